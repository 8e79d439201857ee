from __future__ import annotations

import stat
from pathlib import Path

import pytest

from registry import SigningKey, parse_manifest, verify_release
from registry.errors import (
    InvalidKey,
    InvalidName,
    InvalidVersion,
    LookalikeName,
    ManifestError,
    ReservedName,
    SignatureMismatch,
)
from registry.names import (
    check_lookalike,
    check_namespace_lookalike,
    check_reserved,
    edit_distance_at_most_one,
    normalize_name,
)
from registry.signing import verify_rotation
from tests.registry.factories import package_files

DIGEST = "ab" * 32


def manifest_doc(**overrides: object) -> dict[str, object]:
    import json

    doc: dict[str, object] = json.loads(package_files()["agent.json"])
    doc.update(overrides)
    return doc


def test_manifest_parses_and_exposes_names() -> None:
    m = parse_manifest(manifest_doc(requires={"acme/base": ">=1,<2"}))
    assert (m.namespace, m.short_name, m.entry_function) == ("acme", "summarizer", "process")
    assert m.examples[0].expected == {"summary": "hello", "length": 5}


def test_bad_version_is_invalid_version() -> None:
    with pytest.raises(InvalidVersion) as err:
        parse_manifest(manifest_doc(version="one.two"))
    assert err.value.version == "one.two"


@pytest.mark.parametrize(
    ("field", "value"),
    [("name", "no-namespace"), ("requires", {"acme/x": ">>1"}), ("entry", "../x.py:f"),
     ("templates", ["other/x.json"]), ("extra", 1), ("examples", [{"name": "e"}])],
)
def test_manifest_errors_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ManifestError) as err:
        parse_manifest(manifest_doc(**{field: value}))
    assert any(path.startswith(field) for path, _ in err.value.errors)


def test_manifest_not_json() -> None:
    with pytest.raises(ManifestError, match="not valid JSON"):
        parse_manifest(b"{")


def test_check_ops_are_restricted() -> None:
    doc = manifest_doc(examples=[{"name": "e", "input": {}, "checks": [{"op": "eval"}]}])
    with pytest.raises(ManifestError):
        parse_manifest(doc)


def test_normalization_folds_case_and_separators() -> None:
    assert normalize_name("Acme_Co/My.Agent--X") == "acme-co/my-agent-x"
    with pytest.raises(InvalidName):
        normalize_name("acme/-bad")


def test_reserved_names() -> None:
    with pytest.raises(ReservedName):
        check_reserved("acme/Admin", {"admin"})
    with pytest.raises(ReservedName):
        check_reserved("registry/x", {"registry"})


@pytest.mark.parametrize(
    ("a", "b", "close"),
    [("summarizer", "sumarizer", True), ("summarizer", "summarizre", True),
     ("summarizer", "summarizer2", True), ("summarizer", "summarizor", True),
     ("summarizer", "smumarizre", False), ("abc", "abcde", False)],
)
def test_edit_distance(a: str, b: str, close: bool) -> None:
    assert edit_distance_at_most_one(a, b) is close


def test_lookalikes() -> None:
    with pytest.raises(LookalikeName) as err:
        check_lookalike("Acme/Summarizer", "acme/summarizer")
    assert err.value.existing == "acme/summarizer"
    check_lookalike("acme/summarizer", "acme/summarizer")  # the same package, same spelling
    check_lookalike("acme/summarizer", None)
    with pytest.raises(LookalikeName) as err:
        check_namespace_lookalike("Acne", ["acme", "zeta"], 4)
    assert (err.value.name, err.value.existing, err.value.what) == ("Acne", "acme", "namespace")
    assert "namespace 'Acne' is too similar to another publisher's namespace 'acme'" in str(
        err.value
    )
    check_namespace_lookalike("acne", ["zeta"], 4)
    check_namespace_lookalike("ai", ["al"], 4)  # too short to compare
    check_namespace_lookalike("acmecorp", ["acme"], 4)  # four edits away
    for sibling, held in (("team2", "team1"), ("client10", "client1"), ("v2-tools", "v3-tools")):
        check_namespace_lookalike(sibling, [held], 4)  # numbered siblings
    for lookalike, held in (("acme1", "acme"), ("c0de", "code"), ("acme", "acm3")):
        with pytest.raises(LookalikeName):
            check_namespace_lookalike(lookalike, [held], 4)


def test_release_signature_binds_digest_name_and_version() -> None:
    key = SigningKey.generate()
    sig = key.sign_release(DIGEST, "acme/summarizer", "1.0.0")
    verify_release(key.public_bytes, sig, DIGEST, "Acme/Summarizer", "1.0")  # same release
    for digest, name, version in [("cd" * 32, "acme/summarizer", "1.0.0"),
                                  (DIGEST, "acme/other", "1.0.0"),
                                  (DIGEST, "acme/summarizer", "1.0.1")]:
        with pytest.raises(SignatureMismatch) as err:
            verify_release(key.public_bytes, sig, digest, name, version)
        assert err.value.key_id == key.key_id
    with pytest.raises(SignatureMismatch):
        verify_release(SigningKey.generate().public_bytes, sig, DIGEST, "acme/summarizer", "1")


def test_rotation_statement() -> None:
    old, new = SigningKey.generate(), SigningKey.generate()
    sig = old.sign_rotation(new.public_bytes, "acme")
    verify_rotation(old.public_bytes, sig, new.public_bytes, "Acme")
    with pytest.raises(SignatureMismatch):
        verify_rotation(old.public_bytes, sig, new.public_bytes, "mallory")


def test_key_files_are_private_and_may_be_encrypted(tmp_path: Path) -> None:
    key = SigningKey.generate()
    plain, secret = tmp_path / "plain.pem", tmp_path / "secret.pem"
    key.save(plain)
    key.save(secret, passphrase="hunter2")
    for path in (plain, secret):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SigningKey.load(plain).key_id == key.key_id
    assert SigningKey.load(secret, "hunter2").key_id == key.key_id
    with pytest.raises(InvalidKey):
        SigningKey.load(secret, "wrong")
    with pytest.raises(InvalidKey):
        SigningKey.load(secret)
    (tmp_path / "junk.pem").write_text("junk")
    with pytest.raises(InvalidKey):
        SigningKey.load(tmp_path / "junk.pem")
