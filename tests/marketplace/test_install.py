"""The installer against an in-memory registry serving real signed archives.

The sandbox is replaced by a native vetter here (the packages are our own scaffold); the real
sandbox vets in `test_e2e.py`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from marketplace.client.asks import UpgradeNeedsConsent
from marketplace.client.errors import (
    DigestMismatch,
    DownloadTooLarge,
    InvalidRequirement,
    KeyChanged,
    NotInstalled,
    ResolutionConflict,
    StillRequired,
    VettingFailed,
)
from marketplace.client.installer import Installer, install_dir
from marketplace.client.lockfile import VettingSummary, read_lock, read_pins
from registry.archive import Package
from registry.errors import NoMatchingRelease
from registry.signing import SigningKey
from tests.marketplace.fake_registry import FakeRegistry


def native_vetter(package: Package) -> VettingSummary:
    namespace: dict[str, Any] = {}
    exec(compile(package.entry_source(), "process.py", "exec"), namespace)
    failures = [
        ex.name
        for ex in package.manifest.examples
        if ex.expected is not None and namespace["process"](ex.input) != ex.expected
    ]
    return VettingSummary(
        passed=not failures, examples=len(package.manifest.examples), failures=failures
    )


@pytest.fixture
def registry(tmp_path: Path) -> FakeRegistry:
    return FakeRegistry(tmp_path / "src")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def key(registry: FakeRegistry) -> SigningKey:
    signing = SigningKey.generate()
    registry.add_key("acme", signing)
    return signing


def installer(registry: FakeRegistry, home: Path, **kwargs: Any) -> Installer:
    return Installer(registry.client(), home, vetter=native_vetter, **kwargs)


def snapshot(home: Path) -> dict[str, bytes]:
    """Every file under `home` with its bytes: "the store is unchanged" made checkable."""
    if not home.exists():
        return {}
    return {
        str(p.relative_to(home)): p.read_bytes()
        for p in sorted(home.rglob("*"))
        if p.is_file() and p.name != ".install.lock"
    }


def test_install_picks_best_release_unpacks_and_records(
    registry: FakeRegistry, home: Path, key: SigningKey
) -> None:
    registry.publish("acme", key, "acme/words", "1.0")
    best = registry.publish("acme", key, "acme/words", "1.2")
    registry.publish("acme", key, "acme/words", "2.0b1")  # pre-release: not chosen

    result = installer(registry, home).install("acme/words")

    [entry] = result.installed
    assert (entry.version, entry.digest, entry.key_id) == ("1.2", best.digest, key.key_id)
    assert entry.vetting.passed and entry.vetting.examples == 2
    target = install_dir(home, "acme/words")
    assert json.loads((target / "agent.json").read_text())["version"] == "1.2"
    assert read_lock(home).agents["acme/words"].digest == best.digest
    assert read_pins(home).namespaces["acme"].key_id == key.key_id
    assert "GET /packages/acme/words/versions/1.2/download" in registry.requests


def test_specifier_and_yanked_releases(registry: FakeRegistry, home: Path, key: SigningKey) -> None:
    registry.publish("acme", key, "acme/words", "1.0")
    registry.publish("acme", key, "acme/words", "1.1").yanked = True

    assert installer(registry, home).install("acme/words").installed[0].version == "1.0"
    pinned = installer(registry, home).install("acme/words==1.1")  # an exact pin may pick it
    assert pinned.installed[0].version == "1.1"
    with pytest.raises(NoMatchingRelease, match=r"acme/words matches >=2"):
        installer(registry, home).install("acme/words>=2")


def test_reinstalling_the_same_release_changes_nothing(
    registry: FakeRegistry, home: Path, key: SigningKey
) -> None:
    registry.publish("acme", key, "acme/words", "1.0")
    installer(registry, home).install("acme/words")
    before = snapshot(home)
    again = installer(registry, home).install("acme/words[>=1.0]")
    assert again.installed == [] and [e.version for e in again.unchanged] == ["1.0"]
    assert snapshot(home) == before


def test_upgrade_replaces_the_files(registry: FakeRegistry, home: Path, key: SigningKey) -> None:
    registry.publish("acme", key, "acme/words", "1.0")
    installer(registry, home).install("acme/words")
    registry.publish("acme", key, "acme/words", "1.1")
    result = installer(registry, home).install("acme/words")
    assert result.installed[0].version == "1.1"
    manifest = json.loads((install_dir(home, "acme/words") / "agent.json").read_text())
    assert manifest["version"] == "1.1"
    assert not [p for p in (home / "agents").iterdir() if p.name.startswith(".staging")]


def test_dependencies_install_first_and_leave_with_their_dependent(
    registry: FakeRegistry, home: Path, key: SigningKey
) -> None:
    registry.publish("acme", key, "acme/base", "1.0")
    registry.publish("acme", key, "acme/base", "2.0")
    registry.publish("acme", key, "acme/app", "1.0", {"acme/base": "<2"})

    result = installer(registry, home).install("acme/app")

    assert [(e.name, e.version, e.requested) for e in result.installed] == [
        ("acme/base", "1.0", False),
        ("acme/app", "1.0", True),
    ]
    with pytest.raises(StillRequired, match="acme/base is required by acme/app"):
        installer(registry, home).uninstall("acme/base")
    removed = installer(registry, home).uninstall("acme/app")
    assert {e.name for e in removed} == {"acme/app", "acme/base"}
    assert read_lock(home).agents == {}


def test_conflict_names_both_requirements_and_changes_nothing(
    registry: FakeRegistry, home: Path, key: SigningKey
) -> None:
    registry.publish("acme", key, "acme/base", "1.0")
    registry.publish("acme", key, "acme/base", "2.0")
    registry.publish("acme", key, "acme/old", "1.0", {"acme/base": "<2"})
    registry.publish("acme", key, "acme/new", "1.0", {"acme/base": ">=2"})
    installer(registry, home).install("acme/old")
    before = snapshot(home)

    with pytest.raises(ResolutionConflict) as info:
        installer(registry, home).install("acme/new")

    assert "acme/base<2 (required by acme/old 1.0)" in str(info.value)
    assert "acme/base>=2 (required by acme/new 1.0)" in str(info.value)
    assert snapshot(home) == before


def test_tampered_download_is_refused_and_nothing_is_written(
    registry: FakeRegistry, home: Path, key: SigningKey
) -> None:
    registry.publish("acme", key, "acme/words", "1.0")
    registry.tamper = True
    with pytest.raises(DigestMismatch, match="corrupt or tampered"):
        installer(registry, home).install("acme/words")
    assert snapshot(home) == {}
    assert not install_dir(home, "acme/words").exists()


def test_download_size_cap(registry: FakeRegistry, home: Path, key: SigningKey) -> None:
    registry.publish("acme", key, "acme/words", "1.0")
    with pytest.raises(DownloadTooLarge, match="exceeds the size cap"):
        installer(registry, home, max_download=100).install("acme/words")
    assert snapshot(home) == {}


def test_failed_vetting_refuses_the_install(
    registry: FakeRegistry, home: Path, key: SigningKey
) -> None:
    registry.publish("acme", key, "acme/words", "1.0", examples_pass=False)
    with pytest.raises(VettingFailed, match=r"acme/words 1.0 failed vetting.*counts"):
        installer(registry, home).install("acme/words")
    assert snapshot(home) == {}


def test_a_new_key_without_rotation_is_refused(
    registry: FakeRegistry, home: Path, key: SigningKey
) -> None:
    registry.publish("acme", key, "acme/words", "1.0")
    installer(registry, home).install("acme/words")
    before = snapshot(home)
    stranger = SigningKey.generate()
    registry.add_key("acme", stranger)
    registry.publish("acme", stranger, "acme/words", "1.1")

    with pytest.raises(KeyChanged) as info:
        installer(registry, home).install("acme/words")

    assert (info.value.pinned, info.value.offered) == (key.key_id, stranger.key_id)
    assert snapshot(home) == before


def test_a_rotation_chain_signed_by_the_pinned_key_is_accepted(
    registry: FakeRegistry, home: Path, key: SigningKey
) -> None:
    registry.publish("acme", key, "acme/words", "1.0")
    installer(registry, home).install("acme/words")
    middle, newest = SigningKey.generate(), SigningKey.generate()
    registry.add_key("acme", middle, signed_by=key)
    registry.add_key("acme", newest, signed_by=middle)
    registry.publish("acme", newest, "acme/words", "1.1")

    # Another key is a new trust decision: shown and refused unless accepted (trust.md).
    with pytest.raises(UpgradeNeedsConsent, match="rotated from"):
        installer(registry, home).install("acme/words")
    accepted = installer(registry, home, consent=lambda upgrade: True).install("acme/words")
    assert accepted.installed[0].version == "1.1"
    pin = read_pins(home).namespaces["acme"]
    assert pin.key_id == newest.key_id and pin.rotated_from == [key.key_id]


def test_a_forged_rotation_statement_is_refused(
    registry: FakeRegistry, home: Path, key: SigningKey
) -> None:
    registry.publish("acme", key, "acme/words", "1.0")
    installer(registry, home).install("acme/words")
    forger, forged = SigningKey.generate(), SigningKey.generate()
    registry.add_key("acme", forged, signed_by=forger)
    registry.keys[forged.key_id]["signed_by"] = key.key_id  # claims the pinned key signed it
    registry.publish("acme", forged, "acme/words", "1.1")
    with pytest.raises(KeyChanged):
        installer(registry, home).install("acme/words")


def test_locked_install_reproduces_the_same_bytes(
    registry: FakeRegistry, home: Path, key: SigningKey
) -> None:
    registry.publish("acme", key, "acme/words", "1.0")
    installer(registry, home).install("acme/words")
    files = snapshot(install_dir(home, "acme/words"))
    lock_text = (home / "agentfactory.lock").read_text()
    other = home.parent / "other-machine"
    other.mkdir()
    (other / "agentfactory.lock").write_text(lock_text)
    registry.publish("acme", key, "acme/words", "1.1")  # newer exists; --locked ignores it

    result = installer(registry, other).install_locked()

    assert [e.version for e in result.installed] == ["1.0"]
    assert snapshot(install_dir(other, "acme/words")) == files
    assert read_pins(other).namespaces["acme"].key_id == key.key_id


def test_locked_install_refuses_different_bytes(
    registry: FakeRegistry, home: Path, key: SigningKey
) -> None:
    registry.publish("acme", key, "acme/words", "1.0")
    installer(registry, home).install("acme/words")
    other = home.parent / "other-machine"
    other.mkdir()
    (other / "agentfactory.lock").write_text((home / "agentfactory.lock").read_text())
    # The server now serves other (validly signed) bytes under the same version.
    registry.publish("acme", key, "acme/words", "1.0", {"acme/base": ">=1"})

    with pytest.raises(DigestMismatch):
        installer(registry, other).install_locked()
    assert not install_dir(other, "acme/words").exists()
    with pytest.raises(NotInstalled):
        installer(registry, other).install_locked(["acme/unknown"])


def test_uninstall_leaves_nothing_but_the_key_pin(
    registry: FakeRegistry, home: Path, key: SigningKey
) -> None:
    registry.publish("acme", key, "acme/words", "1.0")
    installer(registry, home).install("acme/words")
    installer(registry, home).uninstall("acme/words")
    assert not (home / "agents" / "acme").exists()
    assert read_lock(home).agents == {}
    assert "acme" in read_pins(home).namespaces
    with pytest.raises(NotInstalled, match="acme/words is not installed"):
        installer(registry, home).uninstall("acme/words")


@pytest.mark.parametrize("text", ["words", "acme/words>>1", "a/b/c", ""])
def test_bad_requirements_are_named(registry: FakeRegistry, home: Path, text: str) -> None:
    with pytest.raises(InvalidRequirement):
        installer(registry, home).install(text)
