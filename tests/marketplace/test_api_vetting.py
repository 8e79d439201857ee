"""Publishing runs the package's examples in the sandbox; keys and publishers can be looked up."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from registry.signing import SigningKey
from tests.marketplace.conftest import Actor, make_package, register

WRONG = "def process(task):\n    return {'echo': task.get('text', '').upper()}\n"


def test_a_published_release_carries_its_sandbox_report(api: Any, acme: Actor,
                                                         tmp_path: Path) -> None:
    archive = make_package(tmp_path, "acme/summarizer", "1.0.0")
    published = acme.publish(archive, "acme/summarizer", "1.0.0")
    assert published.status_code == 201, published.text
    assert published.json()["vetting_status"] == "passed"
    [release] = api.get("/api/v1/packages/acme/summarizer/versions").json()
    report = release["vetting"]
    assert (report["status"], report["totals"]["examples"], report["totals"]["passed"]) == (
        "passed", 1, 1,
    )
    assert report["examples"][0]["name"] == "echo" and report["examples"][0]["fuel_used"] > 0


def test_a_package_whose_example_fails_is_refused_and_not_stored(
    api: Any, acme: Actor, tmp_path: Path
) -> None:
    archive = make_package(tmp_path, "acme/summarizer", "1.0.0", process=WRONG)
    refused = acme.publish(archive, "acme/summarizer", "1.0.0")
    assert refused.status_code == 422
    problem = refused.json()
    assert problem["code"] == "VettingFailed"
    assert "example 'echo'" in problem["detail"]
    assert api.get("/api/v1/packages").json()["total"] == 0
    assert api.get("/api/v1/packages/acme/summarizer").status_code == 404


def test_keys_are_found_by_id_with_their_rotation_statement(api: Any, acme: Actor) -> None:
    new = SigningKey.generate()
    statement = acme.key.sign_rotation(new.public_bytes, "acme")
    body = {
        "public_key": base64.b64encode(new.public_bytes).decode(),
        "rotation_signature": base64.b64encode(statement).decode(),
        "signed_by": acme.key.key_id,
    }
    assert api.post("/api/v1/keys", json=body, headers=acme.auth).status_code == 201
    found = api.get(f"/api/v1/keys/{new.key_id}").json()
    assert (found["publisher"], found["signed_by"]) == ("acme", acme.key.key_id)
    assert base64.b64decode(found["rotation_signature"]) == statement
    assert api.get(f"/api/v1/keys/{'0' * 32}").json()["code"] == "UnknownKey"


def test_a_publisher_page_lists_their_packages(api: Any, acme: Actor, tmp_path: Path) -> None:
    globex = register(api, "globex")
    for actor, name in ((acme, "acme/summarizer"), (acme, "acme/translator"),
                        (globex, "globex/indexer")):
        assert actor.publish(make_package(tmp_path, name), name, "1.0.0").status_code == 201
    page = api.get("/api/v1/publishers/acme").json()
    assert page["namespaces"] == ["acme"]
    assert sorted(p["name"] for p in page["packages"]) == ["acme/summarizer", "acme/translator"]
    listed = api.get("/api/v1/packages", params={"publisher": "globex"}).json()
    assert [p["name"] for p in listed["items"]] == ["globex/indexer"]
