"""The package archive: a deterministic zip with `agent.json`, `templates/`, source, README.

Building: entries sorted by path, timestamps fixed at 1980-01-01 00:00, permissions fixed at
0644, DEFLATE at a fixed level and no extra fields, so the same directory always yields the
same bytes (and the same sha256). Hidden files, `__pycache__` and `*.pyc` are left out.

Reading checks, in this order, before anything is trusted: the archive size; that it is a zip;
the entry count; each entry's name (no absolute path, drive letter, backslash, `..` or empty
component; no duplicate, even case-insensitively; no name that is both a file and a
directory, `x` beside `x/...`); its type (regular files only: links and
devices are refused by their `external_attr` mode bits); its declared size and compression
ratio; the running total. Entries are then inflated with the same caps enforced on the real
byte count, because declared sizes can lie. Only then are the manifest and templates parsed.
Every refusal names the offending entry.

The file record (`file_record`, like a wheel's `RECORD`) lists every file of a package with its
sha256 and size, one CSV row per file sorted by path. It is computed from the files alone, so the
publisher, the registry and the installer all derive the same bytes; a release signature covers
its sha256 (`registry.signing`), and installers keep it beside the unpacked files to check them
before they run.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import stat
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from core.errors import TemplateValidationError
from core.loader import parse_template
from core.template import AgentTemplate
from registry.config import ArchiveLimits
from registry.errors import ArchiveError, ArchiveTooLarge, ManifestError, UnsafeEntry
from registry.manifest import Manifest, parse_manifest
from registry.names import normalize_name

MANIFEST = "agent.json"
READMES = ("README.md", "README.rst", "README.txt", "README")
_EPOCH = (1980, 1, 1, 0, 0, 0)
DEFAULT_LIMITS = ArchiveLimits()  # frozen, so sharing one default is safe
_SKIP_DIRS = {"__pycache__", ".git", ".venv", "node_modules"}
# Ratios are only meaningful for entries big enough to be a bomb; tiny files compress oddly.
_RATIO_MIN_BYTES = 64 * 1024


@dataclass(frozen=True)
class Package:
    """A validated package: its manifest, every file by posix path, and the archive digest."""

    manifest: Manifest
    files: dict[str, bytes]
    digest: str
    size: int
    templates: tuple[AgentTemplate, ...] = ()

    @property
    def readme(self) -> str:
        for name in READMES:
            if name in self.files:
                return self.files[name].decode("utf-8", errors="replace")
        return ""

    def entry_source(self) -> str:
        return self.files[self.manifest.entry_path].decode("utf-8")

    def source_files(self) -> dict[str, str]:
        return {p: b.decode("utf-8") for p, b in self.files.items() if p.endswith(".py")}


def file_record(files: Mapping[str, bytes]) -> bytes:
    """The CSV record of `files`: `path,sha256=<hex>,size` per file, sorted by path.

    The `csv` module quotes any path holding a comma, quote or newline, so a record parses back
    to exactly the files it was made from.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for path in sorted(files):
        body = files[path]
        writer.writerow((path, f"sha256={hashlib.sha256(body).hexdigest()}", len(body)))
    return out.getvalue().encode("utf-8")


def record_digest(files: Mapping[str, bytes]) -> str:
    """The sha256 of `file_record(files)`: what a release signature covers."""
    return hashlib.sha256(file_record(files)).hexdigest()


def parse_record(data: bytes) -> dict[str, tuple[str, int]]:
    """path -> (sha256 hex, size) from a record; `ValueError` naming the row when malformed."""
    entries: dict[str, tuple[str, int]] = {}
    rows = csv.reader(io.StringIO(data.decode("utf-8"), newline=""))
    for number, row in enumerate(rows, 1):
        if len(row) != 3 or not row[1].startswith("sha256=") or not row[2].isdigit():
            raise ValueError(f"row {number} is not 'path,sha256=<hex>,size'")
        if row[0] in entries:
            raise ValueError(f"row {number} repeats {row[0]!r}")
        entries[row[0]] = (row[1].removeprefix("sha256="), int(row[2]))
    return entries


def _included(path: Path, root: Path) -> bool:
    parts = path.relative_to(root).parts
    if any(p.startswith(".") or p in _SKIP_DIRS for p in parts):
        return False
    return not path.name.endswith((".pyc", ".pyo"))


def pack_files(files: dict[str, bytes]) -> bytes:
    """The deterministic zip of `files` (posix path -> bytes). Not validated: see below."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for rel in sorted(files):
            info = zipfile.ZipInfo(rel, date_time=_EPOCH)
            info.create_system = 3  # unix, so the mode bits below are meaningful
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, files[rel], compresslevel=6)
    return buffer.getvalue()


def build_files(files: dict[str, bytes], limits: ArchiveLimits = DEFAULT_LIMITS) -> bytes:
    """The deterministic archive of `files`, validated exactly as `read_archive` does."""
    data = pack_files(files)
    read_archive(data, limits)
    return data


def build_archive(directory: Path, limits: ArchiveLimits = DEFAULT_LIMITS) -> bytes:
    """The deterministic archive of `directory`, validated exactly as `read_archive` does."""
    directory = Path(directory)
    if not (directory / MANIFEST).is_file():
        raise ManifestError(str(directory / MANIFEST), [("", "file not found")])
    files: dict[str, bytes] = {}
    for path in directory.rglob("*"):
        if not _included(path, directory):
            continue
        rel = path.relative_to(directory).as_posix()
        if path.is_symlink():
            raise UnsafeEntry(rel, "symbolic links are not allowed in a package")
        if path.is_dir():
            continue
        if not path.is_file():
            raise UnsafeEntry(rel, "only regular files are allowed in a package")
        files[rel] = path.read_bytes()
    return build_files(files, limits)


def _check_name(name: str, seen: set[str]) -> None:
    if "\\" in name:
        raise UnsafeEntry(name, "backslashes are not allowed in entry names")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafeEntry(name, "absolute paths are not allowed")
    if "\x00" in name:
        raise UnsafeEntry(name, "NUL in entry name")
    parts = name.rstrip("/").split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise UnsafeEntry(name, "'..', '.' and empty path components are not allowed")
    folded = name.lower()
    if folded in seen:
        raise UnsafeEntry(name, "duplicate entry name")
    seen.add(folded)


def _check_file_or_directory(infos: list[zipfile.ZipInfo]) -> None:
    """Refuse a name that is both a file (`x`) and a directory (`x/`, or a parent of `x/y`):
    unpacking one would fail on, or depend on the order of, the other. Case-folded, like the
    duplicate check, for case-insensitive file systems."""
    directories: set[str] = set()
    for info in infos:
        parts = info.filename.lower().rstrip("/").split("/")
        directories.update("/".join(parts[:i]) for i in range(1, len(parts)))
        if info.is_dir():
            directories.add("/".join(parts))
    for info in infos:
        if not info.is_dir() and info.filename.lower() in directories:
            raise UnsafeEntry(info.filename, "is both a file and a directory in the archive")


def _check_type(info: zipfile.ZipInfo) -> None:
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if kind == stat.S_IFLNK:
        raise UnsafeEntry(info.filename, "symbolic links are not allowed")
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise UnsafeEntry(info.filename, "only regular files are allowed (device, fifo or socket)")


def _inflate(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    with zf.open(info) as stream:
        while chunk := stream.read(65536):
            total += len(chunk)
            if total > limit:
                raise ArchiveTooLarge("entry size", total, limit, info.filename)
            chunks.append(chunk)
    return b"".join(chunks)


def open_archive(data: bytes, limits: ArchiveLimits = DEFAULT_LIMITS) -> dict[str, bytes]:
    """Every regular file of the archive by posix path, after all the safety checks."""
    if len(data) > limits.max_archive_bytes:
        raise ArchiveTooLarge("size", len(data), limits.max_archive_bytes)
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ArchiveError(f"not a zip archive: {exc}") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > limits.max_files:
            raise ArchiveTooLarge("file count", len(infos), limits.max_files)
        seen: set[str] = set()
        declared = 0
        for info in infos:
            _check_name(info.filename, seen)
            _check_type(info)
            if info.is_dir():
                continue
            if info.file_size > limits.max_file_bytes:
                raise ArchiveTooLarge("entry size", info.file_size, limits.max_file_bytes,
                                      info.filename)
            if info.file_size >= _RATIO_MIN_BYTES:
                ratio = info.file_size / max(info.compress_size, 1)
                if ratio > limits.max_ratio:
                    raise ArchiveTooLarge("compression ratio", ratio, limits.max_ratio,
                                          info.filename)
            declared += info.file_size
            if declared > limits.max_total_bytes:
                raise ArchiveTooLarge("total size", declared, limits.max_total_bytes,
                                      info.filename)
        _check_file_or_directory(infos)
        files: dict[str, bytes] = {}
        remaining = limits.max_total_bytes
        for info in infos:
            if info.is_dir():
                continue
            try:
                body = _inflate(zf, info, min(limits.max_file_bytes, remaining))
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
                raise ArchiveError(f"corrupt entry {info.filename!r}: {exc}",
                                   info.filename) from None
            remaining -= len(body)
            files[info.filename] = body
    return files


def _template_doc(manifest: Manifest, path: str, raw: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(path, [("", f"not valid UTF-8 JSON: {exc}")]) from None
    except RecursionError:
        raise ManifestError(path, [("", "JSON nested too deeply")]) from None
    if not isinstance(doc, dict):
        raise ManifestError(path, [("", "a template must be a JSON object")])
    # A package's templates run the package's own process() unless they say otherwise (a
    # workflow is run by the factory's `workflow` implementation).
    if "workflow" not in doc:
        doc.setdefault("implementation", normalize_name(manifest.name))
    return doc


def validate_contents(manifest: Manifest, files: dict[str, bytes]) -> tuple[AgentTemplate, ...]:
    """Check that the files the manifest names exist and that every template is valid.

    Package templates must be namespaced by the package's normalized namespace
    (`acme/summarizer`), so two packages can never shadow each other's templates. A package
    whose templates are all workflows needs no entry file (and then declares no examples).
    """
    if not any(name in files for name in READMES):
        raise ManifestError(MANIFEST, [("", f"the package needs a README ({READMES[0]})")])
    for path, body in files.items():
        if path.endswith(".py"):
            try:
                body.decode("utf-8")
            except UnicodeDecodeError:
                raise ManifestError(path, [("", "source files must be UTF-8")]) from None
    namespace = normalize_name(manifest.name).split("/")[0]
    templates = []
    for path in manifest.templates:
        if path not in files:
            raise ManifestError(MANIFEST, [("templates", f"{path!r} is not in the package")])
        try:
            template = parse_template(_template_doc(manifest, path, files[path]), path)
        except TemplateValidationError as exc:
            raise ManifestError(path, exc.errors) from None
        if template.name.split("/")[0] != namespace or "/" not in template.name:
            raise ManifestError(
                path, [("name", f"package templates must be named '{namespace}/<name>'")]
            )
        templates.append(template)
    # Only a package of workflows may have no code: its steps run other packages' agents.
    template_only = all(template.workflow is not None for template in templates)
    if manifest.entry_path not in files and not template_only:
        raise ManifestError(MANIFEST, [("entry", f"{manifest.entry_path!r} is not in the package")])
    if manifest.entry_path not in files and manifest.examples:
        raise ManifestError(MANIFEST, [(
            "examples", "a package of workflows has no process() for the sandbox to vet: run "
            "its steps' agents' examples in their own packages"
        )])
    return tuple(templates)


def read_archive(data: bytes, limits: ArchiveLimits = DEFAULT_LIMITS) -> Package:
    """Open, check and validate an archive (safety caps, manifest, files, templates)."""
    files = open_archive(data, limits)
    if MANIFEST not in files:
        raise ManifestError(MANIFEST, [("", "no agent.json at the archive root")])
    manifest = parse_manifest(files[MANIFEST], limits=limits.manifest)
    templates = validate_contents(manifest, files)
    return Package(manifest, files, hashlib.sha256(data).hexdigest(), len(data), templates)


def extract_package(
    data: bytes, dest: Path, limits: ArchiveLimits = DEFAULT_LIMITS
) -> Package:
    """Validate `data` and write its files under `dest` (which must be missing or empty)."""
    package = read_archive(data, limits)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise ArchiveError(f"extraction directory {str(dest)!r} is not empty")
    root = dest.resolve()
    for name, body in package.files.items():
        target = (root / PurePosixPath(name)).resolve()
        if root not in target.parents:
            raise UnsafeEntry(name, "resolves outside the extraction directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        # "xb" never follows or overwrites anything that appeared in the directory meanwhile.
        with open(target, "xb") as out:
            out.write(body)
        target.chmod(0o644)
    return package
