"""API fuzzing: schemathesis against the server's own OpenAPI document, in process.

Every operation of `/api/v1/openapi.json` (and `/healthz`) gets generated requests, valid ones
and deliberately invalid ones, once anonymously and once with a valid publish+review token, and
every response goes through every check schemathesis has (what `schemathesis run --checks all`
runs): no 5xx, a documented status code, content type, headers and body; invalid input refused
and valid input accepted, so the document declares exactly the rules the server enforces; auth
not ignored. Every path then answers `OPTIONS` and an undeclared method with an `Allow` listing
exactly its documented methods.

Failures are collected per operation and reported together, so one run shows everything the
server gets wrong. Generation is derandomized (same requests every run) and bounded by
`max_examples` per operation and mode.
"""

from __future__ import annotations

import base64
import contextlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import schemathesis.specs.openapi.checks  # registers the OpenAPI checks in CHECKS
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import CHECKS
from schemathesis.generation import GenerationMode
from schemathesis.python.asgi import get_client

from registry.signing import SigningKey
from tests.registry.factories import make_archive

pytestmark = pytest.mark.reliability

EXAMPLES_PER_MODE = 40
# Shared with the command-line run (docs/reliability.md): one documented exception, for uploads.
CONFIG = Path(__file__).with_name("schemathesis.toml")
# Every registered check, as `--checks all` selects them; listed by name in the figures, so a
# check a new schemathesis adds shows up there.
ALL_CHECKS = CHECKS.get_all()


@dataclass
class Target:
    app: Any
    schema: Any
    token: str
    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    from marketplace.server.app import create_app
    from marketplace.server.settings import RateLimit, ServerSettings

    home: Path = tmp_path_factory.mktemp("fuzz-home")
    settings_ = ServerSettings(
        home=home, bootstrap=False, publish_rate=RateLimit(0, 0.0), review_rate=RateLimit(0, 0.0),
        token_rate=RateLimit(0, 0.0),
    )
    app = create_app(settings_)
    with get_client(app) as client:  # type: ignore[arg-type]  # FastAPI is an ASGI app
        token = _seed(client)
    config = schemathesis.Config.from_path(CONFIG)
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app, config=config)
    yield Target(app, schema, token)
    from schemathesis.python.asgi import shutdown_lifespans

    shutdown_lifespans()


def _seed(client: Any) -> str:
    """A publisher with a key and one published package, so some paths hit real rows."""
    reply = client.post("/api/v1/publishers", json={"name": "fuzzer", "namespace": "fuzzer"})
    assert reply.status_code == 201, reply.text
    token: str = reply.json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    key = SigningKey.generate()
    body = {"public_key": base64.b64encode(key.public_bytes).decode()}
    assert client.post("/api/v1/keys", json=body, headers=auth).status_code == 201
    archive = make_archive(name="fuzzer/echo", version="1.0.0", manifest={"examples": []})
    import hashlib

    signature = key.sign_release(hashlib.sha256(archive).hexdigest(), "fuzzer/echo", "1.0.0")
    published = client.post(
        "/api/v1/packages",
        data={"signature": base64.b64encode(signature).decode(), "key_id": key.key_id},
        files={"archive": ("pkg.zip", archive, "application/zip")}, headers=auth,
    )
    assert published.status_code == 201, published.text
    return token


def _operations(schema: Any) -> list[Any]:
    return [result.ok() for result in schema.get_all_operations()]


def _fuzz(target: Target, operation: Any, mode: GenerationMode, auth: bool) -> list[str]:
    failures: list[str] = []
    headers = {"Authorization": f"Bearer {target.token}"} if auth else None

    @settings(
        max_examples=EXAMPLES_PER_MODE, deadline=None, derandomize=True, database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        case = data.draw(operation.as_strategy(generation_mode=mode))
        target.requests[operation.label] += 1
        try:
            response = case.call_and_validate(headers=headers, checks=ALL_CHECKS)
            target.statuses[response.status_code] += 1
        except (Exception, BaseExceptionGroup) as exc:  # collected: one report per operation
            first = str(exc).strip().splitlines()
            failures.append(f"{operation.label} [{mode.value}, auth={auth}]: "
                            + " | ".join(first[:6]))

    # Unsatisfiable: nothing to make invalid (no parameters, no body); the positive run covers it
    with contextlib.suppress(Unsatisfiable):
        run()
    return failures


@pytest.mark.parametrize("auth", [False, True], ids=["anonymous", "token"])
def test_every_operation_answers_within_its_spec(
    target: Target, auth: bool, figures: Any
) -> None:
    operations = _operations(target.schema)
    assert len(operations) >= 15, [op.label for op in operations]
    failures: list[str] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failures.extend(_fuzz(target, operation, mode, auth))
    label = "token" if auth else "anonymous"
    figures.record(f"fuzz.{label}.operations", len(operations))
    figures.record(f"fuzz.{label}.requests", sum(target.requests.values()))
    figures.record("fuzz.checks", ",".join(check.__name__ for check in ALL_CHECKS))
    figures.add("fuzz.requests", sum(target.requests.values()))
    target.requests.clear()
    unique = sorted(set(failures))
    assert not unique, f"{len(unique)} spec violations:\n" + "\n".join(unique[:40])


# A value of the right shape for every path parameter of the API.
_SAMPLES = {
    "namespace": "fuzzer", "name": "echo", "version": "1.0.0", "review_id": "1",
    "key_id": "0" * 32, "token_id": "0" * 16, "publisher": "fuzzer", "run_id": "A" * 16,
}
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def test_every_path_lists_exactly_its_documented_methods(target: Target, figures: Any) -> None:
    paths: dict[str, dict[str, Any]] = target.schema.raw_schema["paths"]
    wrong: list[str] = []
    with get_client(target.app) as client:
        for template, item in paths.items():
            declared = [m for m in _METHODS if m.lower() in item]
            expected = ", ".join([*declared, "OPTIONS"])
            url = template.format(**_SAMPLES)
            options = client.options(url)
            if options.status_code != 204 or options.headers.get("allow") != expected:
                wrong.append(f"OPTIONS {template}: {options.status_code} {options.headers}")
            method = next(m for m in _METHODS if m not in declared)
            refused = client.request(method, url)
            if refused.status_code != 405 or refused.headers.get("allow") != expected:
                wrong.append(f"{method} {template}: {refused.status_code} {refused.headers}")
            elif refused.headers["content-type"] != "application/problem+json":
                wrong.append(f"{method} {template}: 405 is not a problem document")
    figures.record("fuzz.paths_allow_checked", len(paths))
    assert not wrong, "\n".join(wrong)
