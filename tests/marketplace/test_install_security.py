"""Attacks on the installer through a real server: a lying registry, tampered install folders,
revoked keys and rollbacks. Each refusal leaves the home (install folders, lockfile, pins)
exactly as it was.

A lying registry (or a man in the middle) is a `Mitm` transport: it forwards every request to
the real server and rewrites the JSON answers, or answers some paths itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.config import FactorySettings
from core.errors import TemplateNotFound
from core.factory import AgentFactory
from marketplace.client.errors import (
    DowngradeRefused,
    InsecureUrl,
    InstalledFilesChanged,
    KeyChanged,
    PublisherChanged,
    UntrustedPackage,
)
from marketplace.client.http import MarketplaceClient
from marketplace.client.installed import installed_agents, refresh_factory
from marketplace.client.installer import Installer, install_dir
from marketplace.client.integrity import RECORD, SIGNATURE, verify_installed
from marketplace.client.lockfile import read_lock, read_pins
from registry.archive import open_archive, record_digest
from registry.errors import RevokedKey
from registry.signing import SigningKey
from tests.marketplace.cli_runner import run_cli
from tests.marketplace.conftest import LiveServer, make_package, start_server, stop_server
from tests.marketplace.test_install import native_vetter, snapshot

# A process() that leaves a mark on the host when it runs natively: proof that code ran.
MARKING = (
    "def process(task):\n"
    "    import pathlib\n"
    "    if 'mark' in task:\n"
    "        pathlib.Path(task['mark']).write_text('ran')\n"
    "    return {'echo': task.get('text', '')}\n"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    home = tmp_path_factory.mktemp("server") / "home"
    home.mkdir()
    env = {"AGENTFACTORY_BOOTSTRAP": "0", "AGENTFACTORY_VET_UPLOADS": "0",
           "AGENTFACTORY_PUBLISH_RATE": "0", "AGENTFACTORY_TOKEN_RATE": "0"}
    url, proc = start_server(home, env)
    yield url
    stop_server(proc)


@dataclass
class Author:
    """A publisher registered at the live server, with its key and a place to build packages."""

    server: str
    name: str
    token: str
    workdir: Path
    key: SigningKey = field(default_factory=SigningKey.generate)

    def client(self) -> MarketplaceClient:
        return MarketplaceClient(self.server, self.token)

    def sign(self, data: bytes, name: str, version: str, key: SigningKey | None = None) -> bytes:
        digest = hashlib.sha256(data).hexdigest()
        return (key or self.key).sign_release(digest, name, version,
                                              record_digest(open_archive(data)))

    def build(self, short: str, version: str, process: str | None = None) -> bytes:
        if process is None:
            return make_package(self.workdir, f"{self.name}/{short}", version)
        return make_package(self.workdir, f"{self.name}/{short}", version, process=process)

    def publish(self, short: str, version: str, process: str | None = None) -> bytes:
        data = self.build(short, version, process)
        with self.client() as client:
            client.publish(data, self.sign(data, f"{self.name}/{short}", version), self.key.key_id)
        return data

    def rotate(self) -> SigningKey:
        new = SigningKey.generate()
        with self.client() as client:
            client.add_key(new.public_bytes, self.key.sign_rotation(new.public_bytes, self.name),
                           self.key.key_id)
            client.revoke_key(self.key.key_id)
        old, self.key = self.key, new
        return old


def author(server: str, tmp_path: Path, prefix: str) -> Author:
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"  # far from every other name: no look-alikes
    with MarketplaceClient(server) as anon:
        token = anon.register(name, name).token
    person = Author(server, name, token, tmp_path / name)
    person.workdir.mkdir()
    with person.client() as client:
        client.add_key(person.key.public_bytes)
    return person


Rewrite = Callable[[str, Any], Any]


class Mitm(httpx.BaseTransport):
    """Forwards to the real server; rewrites JSON answers and may answer paths itself."""

    def __init__(self, rewrite: Rewrite | None = None,
                 serve: dict[str, httpx.Response] | None = None) -> None:
        self.inner = httpx.HTTPTransport()
        self.rewrite = rewrite or (lambda path, body: body)
        self.serve = serve or {}

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api/v1")
        if path in self.serve:
            return self.serve[path]
        response = self.inner.handle_request(request)
        if not response.headers.get("content-type", "").startswith("application/json"):
            return response
        response.read()
        body = self.rewrite(path, json.loads(response.content))
        return httpx.Response(response.status_code, json=body)


def installer(server: str, home: Path, mitm: Mitm | None = None) -> Installer:
    client = MarketplaceClient(server, transport=mitm) if mitm else MarketplaceClient(server)
    return Installer(client, home, vetter=native_vetter)


def forged_release(owner: Author, signer: Author, short: str, version: str
                   ) -> tuple[dict[str, Any], dict[str, httpx.Response]]:
    """A release of `owner/short` made and signed by `signer`, as a lying registry serves it."""
    name = f"{owner.name}/{short}"
    data = make_package(signer.workdir, name, version)
    signature = signer.sign(data, name, version)
    release = {"name": name, "version": version, "digest": hashlib.sha256(data).hexdigest(),
               "size": len(data), "signature": base64.b64encode(signature).decode(),
               "key_id": signer.key.key_id, "yanked": False, "requires": {}}
    download = httpx.Response(200, content=data, headers={"content-type": "application/zip"})
    return release, {f"/packages/{name}/versions/{version}/download": download}


def lie_about(name: str, publisher: object, release: dict[str, Any] | None = None) -> Rewrite:
    """Say `publisher` publishes `name` (None: say nothing), optionally adding `release`."""

    def rewrite(path: str, body: Any) -> Any:
        if path == f"/packages/{name}":
            body = dict(body)
            if publisher is None:
                body.pop("publisher", None)
            else:
                body["publisher"] = publisher
        if release and path == f"/packages/{name}/versions":
            items = body.get("items", body) if isinstance(body, dict) else body
            return [*items, release]
        return body

    return rewrite


# ---------------------------------------------------------------- 8: the registry's word is not
@pytest.fixture
def alice(server: LiveServer, tmp_path: Path) -> Author:
    return author(server, tmp_path, "alice")


@pytest.fixture
def bob(server: LiveServer, tmp_path: Path) -> Author:
    return author(server, tmp_path, "bob")


@pytest.fixture
def pinned_home(server: LiveServer, tmp_path: Path, alice: Author, bob: Author) -> Path:
    """A home that installed alice/tool 1.0 and bob/util 1.0: both namespaces are pinned."""
    home = tmp_path / "home"
    alice.publish("tool", "1.0")
    bob.publish("util", "1.0")
    installer(server, home).install(f"{alice.name}/tool")
    installer(server, home).install(f"{bob.name}/util")
    pins = read_pins(home).namespaces
    assert pins[alice.name].key_id == alice.key.key_id and pins[alice.name].publisher == alice.name
    return home


def test_the_honest_registry_installs_an_upgrade(
    server: LiveServer, pinned_home: Path, alice: Author
) -> None:
    alice.publish("tool", "1.1")
    [entry] = installer(server, pinned_home).install(f"{alice.name}/tool").installed
    assert (entry.version, entry.publisher) == ("1.1", alice.name)
    verify_installed(install_dir(pinned_home, entry.name), entry)


@pytest.mark.parametrize("form", ["other-namespace", "pinned-publisher", "missing", "genuine-key"])
def test_a_rewritten_publisher_is_refused_like_a_wrong_key(
    server: LiveServer, pinned_home: Path, alice: Author, bob: Author, tmp_path: Path, form: str
) -> None:
    name = f"{alice.name}/tool"
    mallory = author(server, tmp_path, "mallory")
    if form == "other-namespace":  # mallory's own, registered key signs "alice/tool 1.1"
        release, serve = forged_release(alice, mallory, "tool", "1.1")
        mitm = Mitm(lie_about(name, mallory.name, release), serve)
    elif form == "pinned-publisher":  # bob, whose key this client already trusts, signs it
        release, serve = forged_release(alice, bob, "tool", "1.1")
        mitm = Mitm(lie_about(name, {"name": bob.name, "namespaces": [bob.name]}, release), serve)
    elif form == "missing":
        alice.publish("tool", "1.1")
        mitm = Mitm(lie_about(name, None))
    else:  # alice's own genuine release, attributed to bob: the claim alone is refused
        alice.publish("tool", "1.1")
        mitm = Mitm(lie_about(name, bob.name))
    before = snapshot(pinned_home)

    with pytest.raises(PublisherChanged, match=f"namespace is pinned to publisher '{alice.name}'"):
        installer(server, pinned_home, mitm).install(f"{name}==1.1")

    assert snapshot(pinned_home) == before
    assert read_lock(pinned_home).agents[name].version == "1.0"


def test_a_wrong_key_under_the_right_publisher_is_refused(
    server: LiveServer, pinned_home: Path, alice: Author, tmp_path: Path
) -> None:
    mallory = author(server, tmp_path, "mallory")
    release, serve = forged_release(alice, mallory, "tool", "1.1")
    before = snapshot(pinned_home)
    mitm = Mitm(lie_about(f"{alice.name}/tool", alice.name, release), serve)
    with pytest.raises(KeyChanged):
        installer(server, pinned_home, mitm).install(f"{alice.name}/tool==1.1")
    assert snapshot(pinned_home) == before


def test_first_use_without_a_publisher_is_refused(
    server: LiveServer, alice: Author, tmp_path: Path
) -> None:
    alice.publish("tool", "1.0")
    home = tmp_path / "fresh"
    with pytest.raises(UntrustedPackage, match="names no publisher"):
        installer(server, home, Mitm(lie_about(f"{alice.name}/tool", None))).install(
            f"{alice.name}/tool")
    assert snapshot(home) == {}


@pytest.mark.parametrize("url", ["http://registry.example.com", "http://10.0.0.8:8000",
                                 "http://0.0.0.0:8000", "http://[2001:db8::1]/", "HTTP://Example.org"])
def test_plain_http_to_another_machine_is_refused_before_connecting(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AGENTFACTORY_ALLOW_HTTP", raising=False)
    with pytest.raises(InsecureUrl, match="refusing plain http"):
        MarketplaceClient(url)
    home = tmp_path / "home"
    env = {"AGENTFACTORY_HOME": str(home), "AGENTFACTORY_ALLOW_HTTP": ""}
    result = run_cli(env, "install", "acme/x", "--url", url).failed()
    assert "refusing plain http" in result.err and "--insecure-http" in result.err
    assert snapshot(home) == {}
    MarketplaceClient(url, allow_http=True).close()  # an explicit opt-in is honoured


def test_the_opt_in_flag_and_loopback_addresses(tmp_path: Path) -> None:
    for url in ("http://127.0.0.1:8000", "http://127.9.9.9", "http://[::1]:8000",
                "http://localhost:8000", "https://registry.example.com"):
        MarketplaceClient(url).close()
    env = {"AGENTFACTORY_HOME": str(tmp_path / "home"), "AGENTFACTORY_ALLOW_HTTP": ""}
    # With the flag the client goes on to connect (nothing listens on port 1 of this host).
    result = run_cli(env, "search", "x", "--url", "http://0.0.0.0:1", "--insecure-http").failed()
    assert "refusing plain http" not in result.err
    result = run_cli({**env, "AGENTFACTORY_ALLOW_HTTP": "1"}, "search", "x",
                     "--url", "http://0.0.0.0:1").failed()
    assert "refusing plain http" not in result.err


# ------------------------------------------------------------ 9: installed files are verified
@pytest.fixture
def installed(server: LiveServer, alice: Author, tmp_path: Path) -> tuple[Path, str, Path]:
    """A home with alice/marker installed; its process() marks the host when it runs."""
    alice.publish("marker", "1.0", process=MARKING)
    home = tmp_path / "home"
    installer(server, home).install(f"{alice.name}/marker")
    return home, f"{alice.name}/marker", tmp_path / "ran"


def _tamper(folder: Path, form: str) -> str:
    """Apply one form of tampering; return the file the refusal must name."""
    if form == "changed":
        (folder / "process.py").write_text(MARKING.replace("'ran'", "'evil'"))
        return "process.py"
    if form == "added":
        (folder / "templates" / "helper.py").write_text("import os\n")
        return "templates/helper.py"
    if form == "removed":
        (folder / "README.md").unlink()
        return "README.md"
    if form == "linked":
        (folder / "process.py").unlink()
        (folder / "process.py").symlink_to(folder / "agent.json")
        return "process.py"
    if form == "record-edited":  # the attacker also records the new hash: RECORD no longer signed
        (folder / "process.py").write_text(MARKING + "\n# evil\n")
        body = (folder / "process.py").read_bytes()
        lines = [
            f"process.py,sha256={hashlib.sha256(body).hexdigest()},{len(body)}"
            if line.startswith("process.py,") else line
            for line in (folder / RECORD).read_text().splitlines()
        ]
        (folder / RECORD).write_text("\n".join(lines) + "\n")
        return RECORD
    if form == "record-removed":
        (folder / RECORD).unlink()
        return RECORD
    document = json.loads((folder / SIGNATURE).read_text())
    if form == "signature-edited":
        raw = bytearray(base64.b64decode(document["signature"]))
        raw[-1] ^= 1
        document["signature"] = base64.b64encode(bytes(raw)).decode()
    else:  # "signature-other-release"
        document["version"] = "9.9"
    (folder / SIGNATURE).write_text(json.dumps(document))
    return SIGNATURE


@pytest.mark.parametrize("form", ["changed", "added", "removed", "linked", "record-edited",
                                  "record-removed", "signature-edited", "signature-other-release"])
def test_a_tampered_install_never_runs(installed: tuple[Path, str, Path], form: str) -> None:
    home, name, mark = installed
    folder = install_dir(home, name)
    verify_installed(folder, read_lock(home).agents[name])  # intact so far
    culprit = _tamper(folder, form)
    before = snapshot(home)
    task = tmp_task(mark)

    # `agentfactory run`: one error line naming the file; nothing ran.
    env = {"AGENTFACTORY_HOME": str(home), "AGENTFACTORY_SANDBOX_POLICY": "never"}
    result = run_cli(env, "run", name, "--input", str(task)).failed()
    assert f"refusing to load {name}: {culprit} " in result.err, result.err
    assert not mark.exists()

    # The factory: the agent is not offered, and says why.
    settings = FactorySettings(sandbox_policy="never")
    with AgentFactory(settings) as factory:
        os.environ["AGENTFACTORY_HOME"] = str(home)
        try:
            refresh_factory(factory)
            with pytest.raises(TemplateNotFound):
                factory.create_agent(name)
        finally:
            del os.environ["AGENTFACTORY_HOME"]
    error = installed_agents(home, settings).load_error(name)
    assert isinstance(error, InstalledFilesChanged) and error.path == culprit
    assert not mark.exists()
    assert snapshot(home) == before


def tmp_task(mark: Path) -> Path:
    task = mark.parent / "task.json"
    task.write_text(json.dumps({"text": "hi", "mark": str(mark)}))
    return task


def test_an_intact_install_runs_and_a_locked_reinstall_repairs_a_tampered_one(
    server: LiveServer, installed: tuple[Path, str, Path]
) -> None:
    home, name, mark = installed
    _tamper(install_dir(home, name), "changed")
    installer(server, home).install_locked([name])
    env = {"AGENTFACTORY_HOME": str(home), "AGENTFACTORY_SANDBOX_POLICY": "never"}
    result = run_cli(env, "run", name, "--input", str(tmp_task(mark))).ok()
    assert json.loads(result.out) == {"echo": "hi"} and mark.read_text() == "ran"


def test_an_archive_writing_into_the_install_record_is_refused(
    server: LiveServer, alice: Author, tmp_path: Path
) -> None:
    from registry.archive import pack_files

    files = open_archive(alice.build("sneaky", "1.0"))
    files[".agentfactory/RECORD"] = b""
    data = pack_files(files)
    with alice.client() as client:
        client.publish(data, alice.sign(data, f"{alice.name}/sneaky", "1.0"), alice.key.key_id)
    home = tmp_path / "home"
    with pytest.raises(UntrustedPackage, match="would overwrite the install record"):
        installer(server, home).install(f"{alice.name}/sneaky")
    assert snapshot(home) == {}


def test_a_release_signed_in_the_v1_format_is_refused(
    server: LiveServer, alice: Author, tmp_path: Path
) -> None:
    name = f"{alice.name}/old"
    data = alice.build("old", "1.0")
    with alice.client() as client:  # the registry still accepts v1 from older clients
        v1 = alice.key.sign_release(hashlib.sha256(data).hexdigest(), name, "1.0")
        client.publish(data, v1, alice.key.key_id)
    home = tmp_path / "home"
    with pytest.raises(UntrustedPackage, match="v1 signature"):
        installer(server, home).install(name)
    assert snapshot(home) == {}


# ------------------------------------------------------------------- 13: no rollback of keys
def test_a_revoked_pinned_key_is_never_trusted_again(
    server: LiveServer, alice: Author, tmp_path: Path
) -> None:
    name = f"{alice.name}/tool"
    alice.publish("tool", "1.0")
    alice.publish("other", "1.0")
    home = tmp_path / "home"
    installer(server, home).install(name)
    installer(server, home).install(f"{alice.name}/other")
    lock_copy = (home / "agentfactory.lock").read_bytes()
    old = alice.rotate()  # alice rotates to a new key and revokes the old, pinned one
    shutil.rmtree(install_dir(home, name))  # gone: the next install must fetch it again
    before = snapshot(home)

    # 1. the registry still serves 1.0, signed by the pinned key it reports revoked
    with pytest.raises(RevokedKey, match=old.key_id):
        installer(server, home).install_locked([name])
    with pytest.raises(RevokedKey, match=old.key_id):
        installer(server, home).install(f"{name}==1.0")
    assert snapshot(home) == before

    # A new release under the new key installs (the rotation chains back to the pin), and the
    # client remembers the revocation.
    alice.publish("tool", "2.0")
    accepting = installer(server, home)
    accepting.consent = lambda upgrade: True  # another key is shown and must be accepted
    accepting.install(name)
    assert old.key_id in read_pins(home).revoked

    # 2. a registry that now says the old key is fine is not believed
    def unrevoke(path: str, body: Any) -> Any:
        if path.endswith("/keys"):
            return [{**k, "revoked": False} for k in body]
        return body

    before = snapshot(home)
    with pytest.raises(RevokedKey):
        installer(server, home, Mitm(unrevoke)).install(f"{name}==1.0")
    assert snapshot(home) == before

    # 3. an agent installed under the revoked key no longer loads
    with pytest.raises(RevokedKey):
        from marketplace.client.installed import load_installed_package

        load_installed_package(home, read_lock(home).agents[f"{alice.name}/other"])

    # 4. a lockfile copied to another machine cannot bring the revoked key back
    other = tmp_path / "other"
    other.mkdir()
    (other / "agentfactory.lock").write_bytes(lock_copy)
    with pytest.raises(RevokedKey):
        installer(server, other).install_locked()
    assert snapshot(other) == {"agentfactory.lock": lock_copy}


# ------------------------------------------------------------- 13: no rollback of releases
@pytest.fixture
def upgraded(server: LiveServer, alice: Author, tmp_path: Path) -> tuple[Path, str]:
    alice.publish("x", "1.1.0")
    alice.publish("x", "1.2.0")
    home = tmp_path / "home"
    assert installer(server, home).install(f"{alice.name}/x").installed[0].version == "1.2.0"
    return home, f"{alice.name}/x"


def test_a_range_that_would_downgrade_is_refused(
    server: LiveServer, upgraded: tuple[Path, str]
) -> None:
    home, name = upgraded
    before = snapshot(home)
    for request in (f"{name}<1.2", f"{name}~=1.1.0", f"{name}==1.1.*"):
        with pytest.raises(DowngradeRefused, match=f"'{name}==1.1.0' to downgrade on purpose"):
            installer(server, home).install(request)
    assert snapshot(home) == before


def test_a_registry_that_stops_offering_the_newer_release_cannot_roll_back(
    server: LiveServer, upgraded: tuple[Path, str], alice: Author
) -> None:
    home, name = upgraded
    def hide(path: str, body: Any) -> Any:
        return [r for r in body if r["version"] != "1.2.0"] if path.endswith("/versions") else body

    before = snapshot(home)
    expected = (f"{name} 1.2.0 is installed; the registry now offers at most 1.1.0 — refusing "
                f"to downgrade; install '{name}==1.1.0' to downgrade on purpose")
    with pytest.raises(DowngradeRefused) as refused:
        installer(server, home, Mitm(hide)).install(name)
    assert str(refused.value) == expected
    # The same through the command line, against the real server after a yank.
    with alice.client() as client:
        client.yank(name, "1.2.0", "broken")
    env = {"AGENTFACTORY_HOME": str(home), "AGENTFACTORY_URL": str(server)}
    result = run_cli(env, "install", name).failed()
    assert result.err.strip() == f"error: {expected}"
    assert snapshot(home) == before


def test_an_exact_pin_downgrades_on_purpose(
    server: LiveServer, upgraded: tuple[Path, str]
) -> None:
    home, name = upgraded
    [entry] = installer(server, home).install(f"{name}==1.1.0").installed
    assert entry.version == "1.1.0" and read_lock(home).agents[name].version == "1.1.0"
    verify_installed(install_dir(home, name), entry)
