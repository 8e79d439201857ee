"""The file record and the v2 release signature that covers it."""

from __future__ import annotations

import hashlib

import pytest

from registry import Registry
from registry.archive import file_record, open_archive, parse_record, record_digest
from registry.errors import SignatureMismatch
from registry.signing import SigningKey, verify_release
from tests.registry.factories import TestPublisher, make_archive

DIGEST = "ab" * 32
ODD = {"a,b.txt": b"comma", 'quo"te.md': b"quote", "new\nline.py": b"newline", "x/y.json": b""}


def test_the_record_is_deterministic_and_parses_back_to_the_files() -> None:
    files = {**ODD, "agent.json": b"{}"}
    assert file_record(files) == file_record(dict(reversed(list(files.items()))))
    parsed = parse_record(file_record(files))
    assert parsed == {p: (hashlib.sha256(b).hexdigest(), len(b)) for p, b in files.items()}
    assert list(parsed) == sorted(files)
    assert record_digest(files) == hashlib.sha256(file_record(files)).hexdigest()
    assert record_digest({**files, "extra": b""}) != record_digest(files)
    assert record_digest({**files, "agent.json": b"{ }"}) != record_digest(files)


@pytest.mark.parametrize(
    "bad", [b"a.txt,md5=00,1\n", b"a.txt,sha256=00\n", b"a,sha256=0,1\na,sha256=0,1\n"]
)
def test_a_malformed_record_names_its_row(bad: bytes) -> None:
    with pytest.raises(ValueError, match="row"):
        parse_record(bad)


def test_a_v2_signature_vouches_for_its_record_and_nothing_else() -> None:
    key = SigningKey.generate()
    record = "cd" * 32
    signature = key.sign_release(DIGEST, "acme/tool", "1.0.0", record)
    assert len(signature) == 96
    assert verify_release(key.public_bytes, signature, DIGEST, "Acme/Tool", "1.0") == record
    forged = bytes(32) + signature[32:]  # another record in front of the same signature
    attempts = [
        (forged, DIGEST, "acme/tool", "1.0.0"),
        (signature[32:], DIGEST, "acme/tool", "1.0.0"),  # stripped to look like v1
        (signature, "ef" * 32, "acme/tool", "1.0.0"),
        (signature, DIGEST, "acme/other", "1.0.0"),
        (signature, DIGEST, "acme/tool", "1.0.1"),
        (signature + b"\0", DIGEST, "acme/tool", "1.0.0"),
    ]
    for sig, digest, name, version in attempts:
        with pytest.raises(SignatureMismatch):
            verify_release(key.public_bytes, sig, digest, name, version)


def test_v1_signatures_still_verify_and_vouch_for_no_record() -> None:
    key = SigningKey.generate()
    v1 = key.sign_release(DIGEST, "acme/tool", "1.0.0")
    assert len(v1) == 64
    assert verify_release(key.public_bytes, v1, DIGEST, "acme/tool", "1.0.0") is None


def test_the_registry_refuses_a_v2_signature_over_another_record(
    registry: Registry, acme: TestPublisher
) -> None:
    archive = make_archive(name="acme/summarizer", version="1.0.0")
    digest = hashlib.sha256(archive).hexdigest()
    files = open_archive(archive)
    wrong = record_digest({**files, "extra.py": b""})
    lie = acme.key.sign_release(digest, "acme/summarizer", "1.0.0", wrong)
    with pytest.raises(SignatureMismatch):
        registry.publish(acme.principal, archive, lie, acme.key.key_id)
    # Nothing was stored: the same version and bytes publish with an honest signature.
    right = acme.key.sign_release(digest, "acme/summarizer", "1.0.0", record_digest(files))
    release = registry.publish(acme.principal, archive, right, acme.key.key_id)
    assert release.signature == right
