"""The server's and the installer's extension hooks, with third-party plugins installed through
real entry points (`tests.plugin_dist`): routers under `/api/v1/ext`, and package vetoes at
publish and at install.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.errors import BadContribution, PackageVetoed
from marketplace.client.installer import Installer
from marketplace.server.app import create_app
from marketplace.server.settings import ServerSettings
from registry.archive import Package
from registry.signing import SigningKey
from tests.marketplace.conftest import make_package, register
from tests.marketplace.fake_registry import FakeRegistry
from tests.marketplace.test_install import native_vetter, snapshot
from tests.plugin_dist import install_plugin

ROUTER_PLUGIN = '''
from fastapi import APIRouter

router = APIRouter(prefix="/greeter")

@router.get("/hello/{who}")
def hello(who: str) -> dict[str, str]:
    return {"greeting": f"hello, {who}"}

@hookimpl
def agentfactory_api_routers():
    return [router]
'''

# Refuses every package whose name ends in "-banned", saying why.
VETO_PLUGIN = '''
@hookimpl
def agentfactory_validate_package(manifest, settings):
    if manifest.name.endswith("-banned"):
        return [f"{manifest.name} is on the site's ban list"]
    return []
'''


def test_a_plugin_router_answers_under_api_v1_ext(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_app: Callable[..., Any]
) -> None:
    install_plugin(monkeypatch, tmp_path / "site", "tp_router_plugin", ROUTER_PLUGIN)
    api = make_app()

    answer = api.get("/api/v1/ext/greeter/hello/ada")

    assert answer.status_code == 200
    assert answer.json() == {"greeting": "hello, ada"}
    assert "/api/v1/ext/greeter/hello/{who}" in api.get("/api/v1/openapi.json").json()["paths"]
    assert api.get("/greeter/hello/ada").status_code == 404  # only under /api/v1/ext


def test_a_router_that_is_not_an_apirouter_stops_the_server_starting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_plugin(monkeypatch, tmp_path / "site", "tp_bad_router", '''
    @hookimpl
    def agentfactory_api_routers():
        return ["/not/a/router"]
    ''')
    with pytest.raises(BadContribution) as refused:
        create_app(ServerSettings(home=tmp_path / "home", bootstrap=False))
    assert refused.value.plugin == "tp_bad_router"
    assert str(refused.value) == (
        "plugin 'tp_bad_router' answered agentfactory_api_routers with '/not/a/router', "
        "which is not a fastapi.APIRouter"
    )


def test_a_plugin_veto_refuses_a_publish_and_stores_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_app: Callable[..., Any]
) -> None:
    install_plugin(monkeypatch, tmp_path / "site", "tp_veto_publish", VETO_PLUGIN)
    api = make_app(vet_uploads=False)
    acme = register(api, "acme")
    banned = make_package(tmp_path, "acme/words-banned")

    refused = acme.publish(banned, "acme/words-banned", "1.0.0")

    assert refused.status_code == 422
    problem = refused.json()
    assert problem["code"] == "PackageVetoed"
    assert problem["title"] == "Package refused by a plugin"
    assert problem["detail"] == (
        "acme/words-banned 1.0.0 refused by plugin 'tp_veto_publish': "
        "acme/words-banned is on the site's ban list"
    )
    assert api.get("/api/v1/packages/acme/words-banned").status_code == 404
    assert api.get("/api/v1/packages", params={"q": "words"}).json()["total"] == 0
    assert not [p for p in (tmp_path / "home0" / "blobs").rglob("*") if p.is_file()]

    allowed = acme.publish(make_package(tmp_path, "acme/words"), "acme/words", "1.0.0")
    assert allowed.status_code == 201, allowed.text


def test_a_plugin_veto_refuses_an_install_before_vetting_and_unpacking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_plugin(monkeypatch, tmp_path / "site", "tp_veto_install", VETO_PLUGIN)
    registry = FakeRegistry(tmp_path / "src")
    key = SigningKey.generate()
    registry.add_key("acme", key)
    registry.publish("acme", key, "acme/words-banned", "1.0")
    home = tmp_path / "home"
    vetted: list[str] = []

    def vetter(package: Package) -> Any:
        vetted.append(package.manifest.name)
        return native_vetter(package)

    installer = Installer(registry.client(), home, vetter=vetter)
    with pytest.raises(PackageVetoed) as refused:
        installer.install("acme/words-banned")

    assert refused.value.vetoes == {
        "tp_veto_install": ["acme/words-banned is on the site's ban list"]
    }
    assert str(refused.value).startswith("acme/words-banned 1.0 refused by plugin")
    assert vetted == []  # refused before any sandbox time was spent
    assert snapshot(home) == {}
    assert installer.installed() == []
