"""Vetting at publish time, key look-up with rotation statements, and a publisher's packages."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry import LocalBlobStore, Package, Registry, RegistryConfig
from registry.db import make_engine
from registry.errors import PermissionDenied, UnknownKey, VettingFailed
from registry.publish import VettingOutcome
from registry.signing import SigningKey, verify_rotation
from tests.registry.factories import make_archive, make_publisher, publish, sign


class RecordingVetter:
    """Answers with a fixed outcome and remembers which packages it was asked to vet."""

    def __init__(self, status: str, failures: tuple[str, ...] = ()) -> None:
        self.status = status
        self.failures = failures
        self.seen: list[str] = []

    def __call__(self, package: Package) -> VettingOutcome:
        self.seen.append(f"{package.manifest.name} {package.manifest.version}")
        report = {"status": self.status, "examples": len(package.manifest.examples)}
        return VettingOutcome(self.status, report, self.failures)


def vetted_registry(db_url: str, tmp_path: Path, vetter: RecordingVetter) -> Registry:
    return Registry(make_engine(db_url), LocalBlobStore(tmp_path / "blobs"), RegistryConfig(),
                    vetter)


def test_a_passing_package_is_published_with_its_report(db_url: str, tmp_path: Path) -> None:
    vetter = RecordingVetter("passed")
    registry = vetted_registry(db_url, tmp_path, vetter)
    release = publish(registry, make_publisher(registry, "acme"))
    assert vetter.seen == ["acme/summarizer 1.0.0"]
    assert (release.vetting_status, release.vetting) == ("passed", {"status": "passed",
                                                                    "examples": 1})
    [stored] = registry.releases("acme/summarizer")
    assert stored.vetting == release.vetting
    registry.close()


def test_a_failing_package_is_refused_and_nothing_is_stored(db_url: str, tmp_path: Path) -> None:
    vetter = RecordingVetter("failed", ("example 'counts': expected 3, got 4",))
    registry = vetted_registry(db_url, tmp_path, vetter)
    acme = make_publisher(registry, "acme")
    with pytest.raises(VettingFailed, match="example 'counts': expected 3, got 4") as err:
        publish(registry, acme)
    assert (err.value.name, err.value.version) == ("acme/summarizer", "1.0.0")
    assert registry.search().total == 0
    assert [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()] == []
    registry.close()


def test_an_unauthorized_upload_never_reaches_the_sandbox(db_url: str, tmp_path: Path) -> None:
    vetter = RecordingVetter("passed")
    registry = vetted_registry(db_url, tmp_path, vetter)
    make_publisher(registry, "acme")
    mallory = make_publisher(registry, "mallory")
    archive = make_archive(name="acme/summarizer", version="1.0.0")
    signature = sign(mallory, archive, "acme/summarizer", "1.0.0")
    with pytest.raises(PermissionDenied):
        registry.publish(mallory.principal, archive, signature, mallory.key.key_id)
    assert vetter.seen == []
    registry.close()


def test_without_a_vetter_releases_say_not_run(registry: Registry) -> None:
    release = publish(registry, make_publisher(registry, "acme"))
    assert (release.vetting_status, release.vetting) == ("not-run", None)


def test_key_lookup_exposes_the_rotation_statement(registry: Registry) -> None:
    acme = make_publisher(registry, "acme")
    new = SigningKey.generate()
    statement = acme.key.sign_rotation(new.public_bytes, "acme")
    registry.add_key(acme.principal, new.public_bytes, statement, acme.key.key_id)
    found = registry.key(new.key_id)
    assert (found.publisher, found.signed_by) == ("acme", acme.key.key_id)
    assert found.rotation_signature == statement
    first = registry.key(acme.key.key_id)
    verify_rotation(first.public_key, statement, found.public_key, "acme")
    with pytest.raises(UnknownKey):
        registry.key("0" * 32)


def test_search_by_publisher_lists_only_their_packages(registry: Registry) -> None:
    acme = make_publisher(registry, "acme")
    other = make_publisher(registry, "globex")
    publish(registry, acme, "acme/summarizer")
    publish(registry, acme, "acme/translator")
    publish(registry, other, "globex/indexer")
    names = [p.name for p in registry.search(publisher="acme").items]
    assert sorted(names) == ["acme/summarizer", "acme/translator"]
    assert registry.search(publisher="nobody").total == 0
