"""The signed file record kept in an install folder, written at install, checked before a run.

An installed agent lives in `agents/<namespace>/<name>/`: the package's files, plus
`.agentfactory/RECORD` (`registry.archive.file_record` of those files: path, sha256, size) and
`.agentfactory/SIGNATURE` (JSON: format, name, version, archive digest, key id and the release's
v2 signature, which covers the record's sha256; see `registry.signing`).

`verify_installed` runs these checks in order and raises `InstalledFilesChanged` naming the first
file that fails; nothing of the package is parsed or run before all of them pass:

1. SIGNATURE is readable and names the lock entry's package, version, digest and key id;
2. the lock entry's public key hashes to its key id, and the signature verifies with it over
   (digest, name, version, sha256 of RECORD);
3. RECORD parses; every file under the folder (except `.agentfactory/`) is a regular file
   listed in it, and every listed file is present with its recorded size and sha256.

It returns the bytes it hashed, so callers run exactly what was checked, never a second read.
A lock entry's key is the key the install verified (its pin then); whether that key was revoked
since is the caller's question (`keys.json`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from marketplace.client.errors import InstalledFilesChanged
from registry.archive import file_record, parse_record
from registry.errors import SignatureMismatch
from registry.signing import key_id_for, verify_release

if TYPE_CHECKING:
    from marketplace.client.lockfile import LockEntry

META_DIR = ".agentfactory"
RECORD = f"{META_DIR}/RECORD"
SIGNATURE = f"{META_DIR}/SIGNATURE"
FORMAT = 2


def is_reserved(path: str) -> bool:
    """True for an archive path that would land in the install metadata folder."""
    return path.split("/", 1)[0].lower() == META_DIR


def write_install_record(
    root: Path, files: Mapping[str, bytes], entry: LockEntry, signature: bytes
) -> None:
    """Write RECORD and SIGNATURE for the files just unpacked under `root`."""
    meta = root / META_DIR
    meta.mkdir()
    (root / RECORD).write_bytes(file_record(files))
    document = {
        "format": FORMAT, "name": entry.name, "version": entry.version, "digest": entry.digest,
        "key_id": entry.key_id, "signature": base64.b64encode(signature).decode(),
    }
    (root / SIGNATURE).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def verify_installed(root: Path, entry: LockEntry) -> dict[str, bytes]:
    """The files of the agent installed at `root`, checked against its signed record."""
    name = entry.name
    record_bytes = _read(root, RECORD, name)
    signature = _signature(root, entry)
    try:
        public = base64.b64decode(entry.public_key, validate=True)
    except (binascii.Error, ValueError):
        raise InstalledFilesChanged(
            name, "agentfactory.lock", "holds a key that is not base64"
        ) from None
    if key_id_for(public) != entry.key_id:
        raise InstalledFilesChanged(name, "agentfactory.lock", "holds a key not matching its id")
    try:
        signed = verify_release(public, signature, entry.digest, name, entry.version)
    except SignatureMismatch:
        raise InstalledFilesChanged(
            name, SIGNATURE, f"does not verify with key {entry.key_id}"
        ) from None
    if signed is None:
        raise InstalledFilesChanged(name, SIGNATURE, "is a v1 signature, which covers no record")
    if hashlib.sha256(record_bytes).hexdigest() != signed:
        raise InstalledFilesChanged(name, RECORD, "does not match the release signature")
    try:
        expected = parse_record(record_bytes)
    except (ValueError, UnicodeDecodeError) as exc:  # pragma: no cover - signed, so well formed
        raise InstalledFilesChanged(name, RECORD, f"is malformed: {exc}") from None
    files = _files(root, name)
    for path in sorted(files):
        if path not in expected:
            raise InstalledFilesChanged(name, path, "was added after the install")
    for path, (digest, size) in sorted(expected.items()):
        body = files.get(path)
        if body is None:
            raise InstalledFilesChanged(name, path, "is missing")
        if len(body) != size or hashlib.sha256(body).hexdigest() != digest:
            raise InstalledFilesChanged(name, path, "was changed after the install")
    return files


def _read(root: Path, path: str, name: str) -> bytes:
    try:
        with open(root / path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise InstalledFilesChanged(name, path, "is missing") from None
    except OSError as exc:
        raise InstalledFilesChanged(name, path, f"cannot be read ({exc.strerror})") from None


def _signature(root: Path, entry: LockEntry) -> bytes:
    raw = _read(root, SIGNATURE, entry.name)
    try:
        document = json.loads(raw)
        claims = (document["name"], document["version"], document["digest"], document["key_id"])
        signature = base64.b64decode(document["signature"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise InstalledFilesChanged(entry.name, SIGNATURE, "is not readable") from None
    if claims != (entry.name, entry.version, entry.digest, entry.key_id):
        raise InstalledFilesChanged(
            entry.name, SIGNATURE, "names another release than the lockfile records"
        )
    return signature


def _files(root: Path, name: str) -> dict[str, bytes]:
    """Every file under `root` but the metadata folder, by posix path; links are refused."""
    files: dict[str, bytes] = {}
    pending = [(root, "")]
    while pending:
        folder, prefix = pending.pop()
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            raise InstalledFilesChanged(name, prefix or str(root), "is missing") from None
        for item in entries:
            rel = prefix + item.name
            if rel == META_DIR:
                continue
            if item.is_symlink():
                raise InstalledFilesChanged(name, rel, "was replaced by a link")
            if item.is_dir():
                pending.append((Path(item.path), rel + "/"))
            elif item.is_file():
                with open(item.path, "rb", buffering=0) as handle:
                    files[rel] = handle.readall()
            else:
                raise InstalledFilesChanged(name, rel, "is not a regular file")
    return files
