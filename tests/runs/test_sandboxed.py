"""Runs of an installed community agent, under the sandbox, inside the run workers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.runs.conftest import register

pytestmark = pytest.mark.sandbox

# Appended to the scaffold's process.py: on request, block in a WASI sleep reached past the
# runner's import guard, instead of counting words. Blocking burns no fuel, so only the run's
# deadline (the worker killed with its task) can end it, however fast or busy the machine.
BLOCK = '''

import json as _json

_real_import = _json.__dict__["__builtins__"]["__import__"]
_counted = process


def process(task):
    if task.get("block"):
        _real_import("sys").modules.pop("time")
        _real_import("time").sleep(600)
    return _counted(task)
'''


@pytest.fixture
def installed_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from marketplace.client.installer import Installer, sandbox_vetter
    from registry.signing import SigningKey
    from tests.marketplace.fake_registry import FakeRegistry

    registry = FakeRegistry(tmp_path / "src")
    key = SigningKey.generate()
    registry.add_key("acme", key)
    registry.publish("acme", key, "acme/words", "1.0", process_extra=BLOCK)
    home = tmp_path / "client-home"
    Installer(registry.client(), home, vetter=sandbox_vetter()).install("acme/words")
    # The server's factory and its workers read installed agents from $AGENTFACTORY_HOME.
    monkeypatch.setenv("AGENTFACTORY_HOME", str(home))
    return home


def test_a_blocking_guest_times_out_while_other_runs_finish(
    installed_home: Path, make_app: Callable[..., Any]
) -> None:
    client = make_app(workers=2)
    jane = register(client, "jane")
    blocking = jane.submit("acme/words", {"text": "x", "block": True}, timeout_s=1).json()["id"]
    counted = [jane.submit("acme/words", {"text": "one two " * n}).json()["id"]
               for n in range(1, 6)]
    native = jane.submit("documentaliste", {"text": "Still served."}).json()["id"]
    results = [jane.wait(run_id) for run_id in counted]
    assert [r["result"]["words"] for r in results] == [2, 4, 6, 8, 10]
    assert all(r["version"] == "1.0" and r["usage"]["fuel_used"] > 0 for r in results)
    assert jane.wait(native)["status"] == "succeeded"
    final = jane.wait(blocking)
    assert final["status"] == "timed_out", final["error"]
    assert final["error"]["code"] in ("timeout", "deadline")

