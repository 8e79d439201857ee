"""A generated corpus of hostile uploads, each with the refusal it must earn.

`hostile_uploads(keys)` returns `Hostile` records: the multipart fields of one upload, which
caller sends it, and the expected HTTP status, problem `code` and a fragment of `detail`.
Archives are built from `tests.registry.factories.package_files` (a valid package) and then
damaged one way each: byte flips in entries, manifest and signature; signatures by other keys
or over another name/version; replays; zip-slip names, links, devices, bombs, duplicates; huge
and deeply nested JSON; over-long manifest fields; names and versions with invisible or control
characters; local versions; a name that is both a file and a directory; `extends` cycles;
look-alike names; templates asking for denied tools under any spelling; bad callers.

Nothing here talks to a server; the corpus is deterministic (seeded), so a failure names a
case that can be rebuilt exactly.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import random
import stat
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Any

from registry.archive import pack_files
from registry.signing import SigningKey
from tests.registry.factories import REGULAR, SYMLINK, package_files, raw_zip

NAME = "acme/tool"
PUBLISHED = "1.0.0"  # published before the corpus runs; the corpus aims at NAME 2.0.0
VERSION = "2.0.0"


@dataclass
class Keys:
    """The actors' keys: acme's current and revoked keys, mallory's, and one never registered."""

    acme: SigningKey
    acme_revoked: SigningKey
    mallory: SigningKey
    stranger: SigningKey
    published_archive: bytes  # NAME 1.0.0, as published
    published_signature: bytes


@dataclass
class Hostile:
    label: str
    archive: bytes
    status: int
    code: str
    fragment: str
    signature: str | None = None  # base64 text as sent; None: signed correctly by acme
    key_id: str | None = None  # None: acme's current key
    caller: str = "acme"  # acme | mallory | anonymous | review_only | revoked
    omit: tuple[str, ...] = ()  # form fields left out
    extra: dict[str, str] = field(default_factory=dict)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def sign(key: SigningKey, archive: bytes, name: str = NAME, version: str = VERSION) -> str:
    return b64(key.sign_release(hashlib.sha256(archive).hexdigest(), name, version))


def files(name: str = NAME, version: str = VERSION, **kwargs: object) -> dict[str, bytes]:
    return package_files(name=name, version=version, manifest={"examples": []}, **kwargs)  # type: ignore[arg-type]


def valid(name: str = NAME, version: str = VERSION, **kwargs: object) -> bytes:
    return pack_files(files(name, version, **kwargs))


def _entry_data_ranges(archive: bytes) -> list[tuple[str, int, int]]:
    """(entry, start, end) of each entry's compressed bytes inside `archive`."""
    ranges = []
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        for info in zf.infolist():
            header = archive[info.header_offset : info.header_offset + 30]
            name_len = int.from_bytes(header[26:28], "little")
            extra_len = int.from_bytes(header[28:30], "little")
            start = info.header_offset + 30 + name_len + extra_len
            ranges.append((info.filename, start, start + info.compress_size))
    return ranges


def _contents(archive: bytes) -> dict[str, bytes] | None:
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as zf:
            return {info.filename: zf.read(info) for info in zf.infolist()}
    except (zipfile.BadZipFile, zlib.error, EOFError):
        return None


def flip(data: bytes, offset: int, mask: int = 0x01) -> bytes:
    return data[:offset] + bytes([data[offset] ^ mask]) + data[offset + 1 :]


def _with_manifest(**changes: object) -> dict[str, bytes]:
    base = files()
    doc = json.loads(base["agent.json"])
    doc.update(changes)
    base["agent.json"] = json.dumps(doc).encode()
    return base


def _with_template(tools: list[str]) -> dict[str, bytes]:
    base = files()
    path = next(p for p in base if p.startswith("templates/"))
    doc = json.loads(base[path])
    doc["tools"] = tools
    base[path] = json.dumps(doc).encode()
    return base


def _with_templates(chain: list[tuple[str, str]]) -> dict[str, bytes]:
    """The package with templates `(name, extends)` instead of its own."""
    base = {k: v for k, v in files().items() if not k.startswith("templates/")}
    paths = []
    for name, parent in chain:
        path = f"templates/{name.split('/')[1]}.json"
        paths.append(path)
        base[path] = json.dumps({"name": name, "version": "1.0.0", "extends": parent}).encode()
    doc = json.loads(base["agent.json"])
    doc["templates"] = paths
    base["agent.json"] = json.dumps(doc).encode()
    return base


# Deep enough to blow any recursive parser, small enough (60 KB) to pass the ratio check.
DEPTH = 30_000


def _noise(rng: random.Random, size: int) -> str:
    """Incompressible-ish text (hex), so size caps and not the ratio check meet it first."""
    return rng.randbytes(size // 2).hex()


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def hostile_uploads(keys: Keys) -> list[Hostile]:
    rng = random.Random(7)
    cases: list[Hostile] = []
    good = valid()

    def add(
        label: str, archive: bytes, status: int, code: str, fragment: str, **kw: Any
    ) -> None:
        cases.append(Hostile(label, archive, status, code, fragment, **kw))

    # -- byte flips inside compressed entries: CRC or inflate fails before anything is trusted
    # (a flip in deflate padding can leave the content intact: then only the signature fails)
    good_signature = sign(keys.acme, good)
    for entry, start, end in _entry_data_ranges(good):
        for offset in sorted(rng.sample(range(start, end), min(2, end - start))):
            flipped = flip(good, offset, 0x5A)
            intact = _contents(flipped) == _contents(good)
            add(f"flip archive {entry}@{offset}", flipped, 400,
                "SignatureMismatch" if intact else "ArchiveError",
                "does not verify" if intact else "corrupt entry", signature=good_signature)
    # -- flips that keep a valid zip but change signed content: the signature no longer holds
    original = files()
    for path in sorted(original):
        mutated = bytearray(original[path])
        mutated[len(mutated) // 2] ^= 0x20 if chr(mutated[len(mutated) // 2]).isalpha() else 0
        if path == "agent.json" or bytes(mutated) == original[path]:
            continue
        changed = {**original, path: bytes(mutated)}
        add(f"content changed after signing: {path}", pack_files(changed), 400,
            "SignatureMismatch", "does not verify", signature=sign(keys.acme, good))
    for change in ({"summary": "Summarizes text!"}, {"license": "GPL-3.0"},
                   {"description": "tampered"}, {"keywords": ["text", "evil"]}):
        add(f"manifest changed after signing: {next(iter(change))}",
            pack_files(_with_manifest(**change)), 400, "SignatureMismatch", "does not verify",
            signature=sign(keys.acme, good))
    broken = files()
    broken["agent.json"] = broken["agent.json"].replace(b"{", b"<", 1)
    add("manifest byte flip breaks JSON", pack_files(broken), 422, "ManifestError",
        "not valid JSON")
    # -- signature byte flips, truncation, garbage
    signature = base64.b64decode(sign(keys.acme, good))
    for index in (0, 1, 17, 31, 32, 48, 62, 63):
        add(f"signature bit flip @{index}", good, 400, "SignatureMismatch", "does not verify",
            signature=b64(flip(signature, index)))
    shape = "a signature is 64 Ed25519 bytes"  # refused by the API's field rule
    add("signature truncated", good, 422, "RequestValidationError", shape,
        signature=b64(signature[:63]))
    add("signature doubled", good, 422, "RequestValidationError", shape,
        signature=b64(signature * 2))
    add("signature not base64", good, 422, "RequestValidationError", shape,
        signature="not*base64!")
    add("signature missing", good, 422, "RequestValidationError", "signature is required",
        omit=("signature",))
    add("key id missing", good, 422, "RequestValidationError", "signing key is required",
        omit=("key_id",))
    # -- signatures by other keys, or over another name or version
    add("signed by mallory, claims acme's key", good, 400, "SignatureMismatch",
        "does not verify", signature=sign(keys.mallory, good))
    add("signed by mallory's key, named", good, 404, "UnknownKey", "unknown signing key",
        signature=sign(keys.mallory, good), key_id=keys.mallory.key_id)
    add("signed by an unregistered key", good, 404, "UnknownKey", "unknown signing key",
        signature=sign(keys.stranger, good), key_id=keys.stranger.key_id)
    add("signed by acme's revoked key", good, 400, "RevokedKey", "has been revoked",
        signature=sign(keys.acme_revoked, good), key_id=keys.acme_revoked.key_id)
    add("signature over another version", good, 400, "SignatureMismatch", "does not verify",
        signature=sign(keys.acme, good, version="9.9.9"))
    add("signature over another name", good, 400, "SignatureMismatch", "does not verify",
        signature=sign(keys.acme, good, name="acme/other"))
    add("signature of the published archive reused", good, 400, "SignatureMismatch",
        "does not verify", signature=b64(keys.published_signature))
    # -- replays
    add("replay of the published release", keys.published_archive, 409, "DuplicateRelease",
        "already exists", signature=b64(keys.published_signature))
    add("old version, new bytes", valid(version=PUBLISHED, summary="Rewritten"), 409,
        "DuplicateRelease", "already exists", extra={"version": PUBLISHED})
    add("old version, other spelling", valid(version="1.0"), 409, "DuplicateRelease",
        "already exists", extra={"version": "1.0"})
    add("published archive replayed by mallory", keys.published_archive, 403,
        "PermissionDenied", "belongs to another publisher", caller="mallory",
        signature=b64(keys.published_signature))
    # -- unsafe entries
    body = files()
    for entry, reason in (("../evil.py", "'..'"), ("templates/../../evil.py", "'..'"),
                          ("/etc/cron.d/evil", "absolute"), ("C:/evil.py", "absolute"),
                          ("a\\..\\evil.py", "backslash"), ("x//evil.py", "empty path")):
        entries = [(k, v, REGULAR) for k, v in body.items()] + [(entry, b"x", REGULAR)]
        add(f"zip-slip {entry}", raw_zip(entries), 400, "UnsafeEntry", reason)
    entries = [(k, v, REGULAR) for k, v in body.items()]
    add("symlink to /etc/passwd", raw_zip([*entries, ("link", b"/etc/passwd", SYMLINK)]), 400,
        "UnsafeEntry", "symbolic links")
    add("symlink over process.py",
        raw_zip([(k, v, SYMLINK if k == "process.py" else REGULAR) for k, v in body.items()]),
        400, "UnsafeEntry", "symbolic links")
    add("fifo entry", raw_zip([*entries, ("pipe", b"", stat.S_IFIFO | 0o644)]), 400,
        "UnsafeEntry", "only regular files")
    add("duplicate entry, other case", raw_zip([*entries, ("README.MD", b"x", REGULAR)]), 400,
        "UnsafeEntry", "duplicate entry")
    for label, extra in (("file and directory: process.py/", [("process.py/x.py", b"x")]),
                         ("file and directory: data, data/", [("data", b"f"), ("data/n", b"d")]),
                         ("file and directory, other case", [("Data", b"f"), ("data/n", b"d")])):
        add(label, raw_zip([*entries] + [(n, b, REGULAR) for n, b in extra]), 400,
            "UnsafeEntry", "both a file and a directory")
    # -- bombs and sizes
    add("zip bomb: 8 MB of zeros", raw_zip([*entries, ("data/zeros", bytes(8 << 20), REGULAR)]),
        413, "ArchiveTooLarge", "compression ratio")
    add("entry over 10 MB", raw_zip([*entries, ("data/big", bytes(11 << 20), REGULAR)]), 413,
        "ArchiveTooLarge", "entry size")
    add("600 files", raw_zip([*entries] + [(f"d/{i}.txt", b"x", REGULAR) for i in range(600)]),
        413, "ArchiveTooLarge", "file count")
    add("upload over the 10 MiB cap", rng.randbytes(11 << 20), 413, "UploadTooLarge",
        "exceeds the upload limit")
    add("not a zip", rng.randbytes(4096), 400, "ArchiveError", "not a zip archive")
    add("empty file", b"", 400, "ArchiveError", "not a zip archive")
    # -- huge and deep JSON
    add("huge manifest description", pack_files(_with_manifest(description=_noise(rng, 30_000))),
        422, "ManifestError", "description")
    add("manifest with 5000 keywords", pack_files(_with_manifest(keywords=["k"] * 5000)), 422,
        "ManifestError", "keywords")
    add("manifest with an unknown 2 MB field",
        pack_files(_with_manifest(blob=_noise(rng, 2 << 20))), 422, "ManifestError",
        "over the 131072-byte limit")
    add("manifest with an unknown field", pack_files(_with_manifest(blob="x")), 422,
        "ManifestError", "blob")
    # -- every manifest field bounded (issue 11, point 7)
    bounds: list[tuple[str, dict[str, Any], str]] = [
        ("100 authors", {"authors": ["a"] * 100}, "authors: at most 20"),
        ("a 10 kB author", {"authors": ["a" * 10_000]}, "authors.0: 1 to 200"),
        ("an author with a newline", {"authors": ["Ada\nLovelace"]}, "authors.0: no control"),
        ("500 permissions", {"permissions": [f"p{i}" for i in range(500)]}, "permissions"),
        ("a javascript: homepage", {"homepage": "javascript:alert(1)"}, "homepage"),
        ("a 5 kB homepage", {"homepage": "https://x.org/" + "a" * 5000}, "homepage"),
        ("200 examples", {"examples": [{"name": f"e{i}", "input": {}} for i in range(200)]},
         "examples: at most 20"),
        ("500 requirements", {"requires": {f"acme/d{i}": ">=1" for i in range(500)}},
         "requires: at most 50"),
    ]
    for label, change, fragment in bounds:
        add(f"manifest bound: {label}", pack_files(_with_manifest(**change)), 422,
            "ManifestError", fragment)
    deep = files()
    deep["agent.json"] = _deep(DEPTH)
    add(f"manifest nested {DEPTH} deep", pack_files(deep), 422, "ManifestError", "nested")
    deep = files()
    template = next(p for p in deep if p.startswith("templates/"))
    deep[template] = b'{"name": ' + _deep(DEPTH) + b"}"
    add(f"template nested {DEPTH} deep", pack_files(deep), 422, "ManifestError", "nested")
    add("manifest is a list", pack_files({**files(), "agent.json": b"[]"}), 422,
        "ManifestError", "JSON object")
    # -- look-alike names
    for label, name in (("cyrillic o", "acme/t\u043e\u043el"), ("zero-width space",
                        "acme/to\u200bol"), ("fullwidth", "acme/\uff54ool"),
                        ("mixed-script namespace", "\u0430cme/tool"),
                        ("zero-width joiner", "acme/tool\u200d"), ("RTL override",
                        "acme/\u202eloot"), ("combining accent", "acme/to\u0301ol")):
        add(f"look-alike name: {label}", pack_files(_with_manifest(name=name)), 422,
            "ManifestError", "must be 1-64 letters")
    for label, name in (("trailing newline", "acme/tool\n"), ("trailing space", "acme/tool "),
                        ("NUL", "acme/to\x00ol"), ("BOM", "\ufeffacme/tool"),
                        ("no-break space", "acme/tool\u00a0")):
        add(f"name with {label}", pack_files(_with_manifest(name=name)), 422,
            "ManifestError", "must be 1-64 letters")
    add("case-only variant of a package", valid(name="acme/TOOL"), 409, "LookalikeName",
        "too similar", extra={"name": "acme/TOOL"})
    add("separator variant of a package", valid(name="acme/Tool"), 409, "LookalikeName",
        "too similar", extra={"name": "acme/Tool"})
    # -- templates asking for denied tools
    for tools in (["shell"], ["SHELL"], ["bash:exec"], ["network.http"], ["filesystem.write"],
                  ["summarize", "subprocess"], ["run-shell"], ["shell_exec"], ["os.system"],
                  ["runShell"], ["http_get"], ["network_request"], ["fs_write"], ["popen"],
                  ["write_file"]):
        add(f"template asks for {tools}", pack_files(_with_template(tools)), 422,
            "ManifestError", "deny-list")
    # -- other invalid packages
    add("template outside the namespace",
        pack_files(files(template_names=["other/tool"])), 422, "ManifestError",
        "must be named 'acme/")
    add("entry escapes the package", pack_files(_with_manifest(entry="../x.py:process")), 422,
        "ManifestError", "entry")
    add("source is not UTF-8", pack_files({**files(), "process.py": b"\xff\xfe\x00bad"}), 422,
        "ManifestError", "UTF-8")
    add("version not PEP 440", pack_files(_with_manifest(version="1.0-evil; rm -rf")), 400,
        "InvalidVersion", "PEP 440")
    for label, version in (("trailing newline", "2.0.0\n"), ("leading space", " 2.0.0"),
                           ("CRLF", "2.0.0\r\n")):
        add(f"version with {label}", pack_files(_with_manifest(version=version)), 400,
            "InvalidVersion", "PEP 440")
    for version in ("2.0.0+local", "2.0.0+ubuntu.1"):
        add(f"local version {version}", pack_files(_with_manifest(version=version)), 422,
            "ManifestError", "local version label")
    # -- extends cycles within the package
    for label, chain in (("extends itself", [("acme/tool", "acme/tool")]),
                         ("extends cycle of two", [("acme/tool", "acme/base"),
                                                   ("acme/base", "acme/tool")])):
        add(label, pack_files(_with_templates(chain)), 422, "ManifestError",
            "extends itself" if len(chain) == 1 else "inheritance cycle")
    # -- hostile callers
    add("anonymous upload", good, 401, "AuthenticationError", "missing token",
        caller="anonymous")
    add("mallory uploads into acme's namespace", good, 403, "PermissionDenied",
        "belongs to another publisher", caller="mallory", signature=sign(keys.mallory, good),
        key_id=keys.mallory.key_id)
    add("review-only token", good, 403, "PermissionDenied", "lacks the 'publish' scope",
        caller="review_only")
    add("revoked token", good, 401, "AuthenticationError", "authentication failed",
        caller="revoked")
    return cases


def sign_case(case: Hostile, keys: Keys) -> str:
    """The signature text to send: the case's own, or acme's over the name/version it claims."""
    if case.signature is not None:
        return case.signature
    name = case.extra.get("name", NAME)
    version = case.extra.get("version", VERSION)
    return sign(keys.acme, case.archive, name, version)
