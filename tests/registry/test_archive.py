from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from registry import ArchiveLimits, build_archive, extract_package, read_archive
from registry.errors import ArchiveError, ArchiveTooLarge, ManifestError, UnsafeEntry
from tests.registry.factories import (
    REGULAR,
    SYMLINK,
    make_archive,
    make_package_dir,
    package_files,
    raw_zip,
    unchecked_archive,
)


def test_build_is_deterministic_across_directories_and_mtimes(tmp_path: Path) -> None:
    a = make_package_dir(tmp_path / "a")
    b = make_package_dir(tmp_path / "b")
    os.utime(b / "process.py", (1_000_000, 1_000_000))
    (b / "__pycache__").mkdir()
    (b / "__pycache__" / "process.cpython-311.pyc").write_bytes(b"junk")
    assert build_archive(a) == build_archive(b)


def test_read_archive_round_trips_the_package() -> None:
    package = read_archive(make_archive(name="acme/summarizer", version="2.0"))
    assert package.manifest.name == "acme/summarizer"
    assert package.manifest.namespace == "acme" and package.manifest.short_name == "summarizer"
    assert "def process" in package.entry_source()
    assert set(package.source_files()) == {"process.py"}
    assert package.readme.startswith("# acme/summarizer")
    assert package.templates[0].implementation == "acme/summarizer"
    assert len(package.digest) == 64


def test_flipped_byte_is_refused() -> None:
    data = bytearray(make_archive(pad_to=5000))
    data[len(data) // 3] ^= 0x01
    with pytest.raises(ArchiveError):
        read_archive(bytes(data))


@pytest.mark.parametrize(
    ("name", "reason"),
    [("/etc/passwd", "absolute"), ("../evil.py", ".."), ("a/../../b", ".."),
     ("a\\b.py", "backslash"), ("C:/x.py", "absolute")],
)
def test_unsafe_names_are_refused_naming_the_entry(name: str, reason: str) -> None:
    with pytest.raises(UnsafeEntry) as err:
        read_archive(raw_zip([(name, b"x", REGULAR)]))
    assert err.value.entry == name
    assert reason in str(err.value)


def test_symlink_entry_is_refused() -> None:
    with pytest.raises(UnsafeEntry, match="symbolic") as err:
        read_archive(raw_zip([("link.py", b"/etc/passwd", SYMLINK)]))
    assert err.value.entry == "link.py"


def test_device_entry_is_refused() -> None:
    with pytest.raises(UnsafeEntry, match="device"):
        read_archive(raw_zip([("dev", b"", 0o020644)]))


def test_duplicate_entries_are_refused() -> None:
    data = raw_zip([("a.py", b"1", REGULAR), ("A.py", b"2", REGULAR)])
    with pytest.raises(UnsafeEntry, match="duplicate"):
        read_archive(data)


def test_zip_bomb_is_refused_by_ratio() -> None:
    data = raw_zip([("big.txt", b"\0" * (5 * 1024 * 1024), REGULAR)])
    with pytest.raises(ArchiveTooLarge) as err:
        read_archive(data)
    assert err.value.what == "compression ratio" and err.value.entry == "big.txt"


def test_oversized_archives_are_refused() -> None:
    small = ArchiveLimits(max_archive_bytes=1000)
    with pytest.raises(ArchiveTooLarge, match="size"):
        read_archive(make_archive(pad_to=5000), small)
    with pytest.raises(ArchiveTooLarge, match="file count"):
        read_archive(make_archive(), ArchiveLimits(max_files=3))
    with pytest.raises(ArchiveTooLarge, match="total size"):
        read_archive(make_archive(pad_to=5000), ArchiveLimits(max_total_bytes=4000))


def test_lying_declared_size_is_caught_while_inflating() -> None:
    data = bytearray(raw_zip([("a.txt", b"A" * 1000, REGULAR)], compress=False))
    # Patch the declared uncompressed size (central directory and local header) down to 10.
    body = bytes(data)
    for marker in (b"PK\x01\x02", b"PK\x03\x04"):
        pos = body.index(marker)
        offset = pos + (24 if marker == b"PK\x01\x02" else 22)
        data[offset : offset + 4] = (10).to_bytes(4, "little")
    with pytest.raises(ArchiveError):
        read_archive(bytes(data), ArchiveLimits(max_file_bytes=100))


def test_not_a_zip() -> None:
    with pytest.raises(ArchiveError, match="not a zip"):
        read_archive(b"hello")


def test_missing_readme_entry_and_template_are_manifest_errors() -> None:
    files = package_files()
    del files["README.md"]
    from registry.archive import pack_files

    with pytest.raises(ManifestError, match="README"):
        read_archive(pack_files(files))
    with pytest.raises(ManifestError, match="entry"):
        read_archive(unchecked_archive(manifest={"entry": "missing.py:process"}))
    with pytest.raises(ManifestError, match="templates"):
        read_archive(unchecked_archive(manifest={"templates": ["templates/none.json"]}))


def test_template_is_validated_by_the_core_validator() -> None:
    files = package_files()
    files["templates/summarizer.json"] = json.dumps({"name": "acme/summarizer",
                                                     "version": "nope"}).encode()
    from registry.archive import pack_files

    with pytest.raises(ManifestError) as err:
        read_archive(pack_files(files))
    assert err.value.source == "templates/summarizer.json"
    assert any(path == "version" for path, _ in err.value.errors)


def test_template_must_be_namespaced_like_the_package() -> None:
    with pytest.raises(ManifestError, match="acme/<name>"):
        read_archive(unchecked_archive(template_names=["other/thing"]))


def test_build_refuses_symlinks(tmp_path: Path) -> None:
    root = make_package_dir(tmp_path / "p")
    (root / "link.py").symlink_to("/etc/passwd")
    with pytest.raises(UnsafeEntry) as err:
        build_archive(root)
    assert err.value.entry == "link.py"


def test_extract_writes_files_and_refuses_non_empty_dest(tmp_path: Path) -> None:
    data = make_archive()
    package = extract_package(data, tmp_path / "out")
    assert (tmp_path / "out" / "process.py").read_text() == package.entry_source()
    assert (tmp_path / "out" / "templates" / "summarizer.json").is_file()
    with pytest.raises(ArchiveError, match="not empty"):
        extract_package(data, tmp_path / "out")


def test_extract_refuses_zip_slip_before_writing(tmp_path: Path) -> None:
    files = package_files()
    data = raw_zip([(k, v, REGULAR) for k, v in files.items()] + [("../x.py", b"", REGULAR)])
    with pytest.raises(UnsafeEntry):
        extract_package(data, tmp_path / "out")
    assert not (tmp_path / "x.py").exists()
    assert not any((tmp_path / "out").iterdir()) if (tmp_path / "out").exists() else True
