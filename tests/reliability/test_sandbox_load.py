"""Sandbox under the installed-agent path, and the server under concurrent sandboxed work.

1. A package whose `process()` dispatches to a corpus of hostile behaviours (memory bombs,
   runaway loops, escapes, huge output, non-JSON results, ...) is published without examples
   (so as "unvetted"), installed with the real installer into a temp home, and run through an
   `AgentFactory` that sees it through the installed-agents plugin. Each hostile call must raise
   the right typed `sandbox.errors` error, and the next ordinary call must still work.
2. Many concurrent publishes of packages whose examples burn fuel and memory (which the server
   vets in the sandbox when it vets at publish) while `/healthz` is polled: every health check
   answers 200 within a generous client timeout, and the server's resident memory stays under
   a generous bound. Latencies are printed (p50/p99), never asserted.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from marketplace.client.http import MarketplaceClient
from marketplace.client.installer import Installer, sandbox_vetter
from registry.archive import pack_files
from registry.signing import SigningKey
from sandbox import errors as sbx
from tests.marketplace.conftest import start_server, stop_server
from tests.registry.factories import package_files
from tests.reliability.conftest import Figures
from tests.signing import sign_archive

pytestmark = [pytest.mark.reliability, pytest.mark.sandbox, pytest.mark.e2e]

HOSTILE_SOURCE = '''
def memory_bomb(task):
    x = []
    while True:
        x.append("a" * 10**6)

def huge_allocation(task):
    return len(bytearray(10**9))

def recursion(task):
    return recursion(task)

def read_passwd(task):
    return {"data": open("/etc/passwd").read()}

def socket_(task):
    import socket
    return {}

def subprocess_(task):
    import subprocess
    return {"out": subprocess.run(["ls"])}

def ctypes_(task):
    import ctypes
    return {}

def sleep(task):
    import time
    time.sleep(60)

def import_os(task):
    import os
    return {"env": dict(os.environ)}

def big_result(task):
    return {"x": "x" * 10 * 2**20}

def big_print(task):
    print("x" * 10 * 2**20)
    return {}

def not_json(task):
    return {"x": {1, 2}}

def nan(task):
    return {"x": float("nan")}

def not_a_dict(task):
    return [1, 2, 3]

def exception(task):
    raise ValueError("bad task")

def exit_(task):
    raise SystemExit(3)

def spin(task):
    while True:
        pass

CASES = {name: fn for name, fn in list(globals().items()) if callable(fn)}

def process(task):
    case = task.get("case")
    if case is None:
        return {"echo": task.get("text", "")}
    return CASES[case](task)
'''

EXPECTED: dict[str, tuple[type[Exception], ...]] = {
    "memory_bomb": (sbx.AgentOutOfMemory,),
    "huge_allocation": (sbx.AgentOutOfMemory,),
    "recursion": (sbx.AgentFailed,),
    "read_passwd": (sbx.AgentFailed,),
    "socket_": (sbx.AgentFailed,),
    "subprocess_": (sbx.AgentFailed,),
    "ctypes_": (sbx.AgentFailed,),
    "sleep": (sbx.AgentFailed,),
    "import_os": (sbx.AgentFailed,),
    "big_result": (sbx.AgentOutputTooLarge,),
    "big_print": (sbx.AgentOutputTooLarge,),
    "not_json": (sbx.AgentBadOutput,),
    "nan": (sbx.AgentBadOutput,),
    "not_a_dict": (sbx.AgentBadOutput,),
    "exception": (sbx.AgentFailed,),
    "exit_": (sbx.AgentFailed,),
    "spin": (sbx.AgentTimeout, sbx.AgentOutOfFuel),
}
# More publishes than vetting slots: they queue for a slot (up to 10 minutes) rather than get 429
# (the caps themselves are tried in test_vetting_attack.py).
ENV = {"AGENTFACTORY_BOOTSTRAP": "0", "AGENTFACTORY_PUBLISH_RATE": "0",
       "AGENTFACTORY_VET_QUEUE": "600"}
CONCURRENT_PUBLISHES = 8
RSS_BOUND_MB = 2048  # generous: the point is "bounded", not a budget


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _publisher(http: httpx.Client, name: str) -> tuple[str, SigningKey]:
    token = http.post("/api/v1/publishers", json={"name": name, "namespace": name}).json()[
        "token"]
    key = SigningKey.generate()
    added = http.post("/api/v1/keys", headers=_auth(token),
                      json={"public_key": base64.b64encode(key.public_bytes).decode()})
    assert added.status_code == 201, added.text
    return token, key


def _upload(http: httpx.Client, token: str, key: SigningKey, files: dict[str, bytes],
            name: str, version: str = "1.0.0") -> httpx.Response:
    archive = pack_files(files)
    signature = sign_archive(key, archive, name, version)
    return http.post("/api/v1/packages", headers=_auth(token), timeout=300.0, files={
        "archive": ("p.zip", archive, "application/zip")}, data={
        "signature": base64.b64encode(signature).decode(), "key_id": key.key_id})


def test_hostile_installed_agent_fails_typed_and_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, figures: Figures
) -> None:
    server_home = tmp_path / "server"
    server_home.mkdir()
    server, proc = start_server(server_home, ENV)
    try:
        with httpx.Client(base_url=server, timeout=60.0) as http:
            token, key = _publisher(http, "hostile")
            files = package_files(name="hostile/agent", manifest={"examples": []})
            files["process.py"] = HOSTILE_SOURCE.encode()
            assert _upload(http, token, key, files, "hostile/agent").status_code == 201
        home = tmp_path / "client"
        with MarketplaceClient(server) as market:
            result = Installer(market, home, vetter=sandbox_vetter()).install("hostile/agent")
        assert [e.vetting.status for e in result.installed] == ["unvetted"]
    finally:
        stop_server(proc)

    from core.config import FactorySettings
    from core.factory import AgentFactory

    monkeypatch.setenv("AGENTFACTORY_HOME", str(home))
    factory = AgentFactory(FactorySettings(sandbox_policy="always"))
    wrong: list[str] = []
    try:
        agent = factory.create_agent("hostile/agent")
        for case, expected in EXPECTED.items():
            try:
                agent.process({"case": case})
                wrong.append(f"{case}: no error")
            except expected:
                pass
            except Exception as exc:
                wrong.append(f"{case}: {type(exc).__name__}: {str(exc)[:200]}")
            if agent.process({"text": case}) != {"echo": case}:
                wrong.append(f"{case}: the next call did not work")
    finally:
        factory.close()
    figures.record("sandbox.hostile_cases", len(EXPECTED))
    assert not wrong, "\n".join(wrong)


BURNER = '''
def process(task):
    total = 0
    for i in range(task["n"]):
        total += i * i
    block = bytearray(task["mb"] * 2**20)
    return {"total": total, "size": len(block)}
'''


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def test_server_stays_responsive_under_concurrent_sandboxed_vetting(
    tmp_path: Path, figures: Figures
) -> None:
    home = tmp_path / "server"
    home.mkdir()
    server, proc = start_server(home, ENV)
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    failures: list[str] = []
    rss: list[float] = []
    try:
        with httpx.Client(base_url=server, timeout=60.0) as http:
            accounts = [_publisher(http, f"burner{i}") for i in range(CONCURRENT_PUBLISHES)]

        def publish(index: int) -> None:
            name = f"burner{index}/load"
            examples: list[dict[str, Any]] = [
                {"name": f"burn{k}", "input": {"n": 200_000, "mb": 32},
                 "expected": {"total": sum(i * i for i in range(200_000)), "size": 32 << 20}}
                for k in range(3)]
            files = package_files(name=name, manifest={"examples": examples})
            files["process.py"] = BURNER.encode()
            with httpx.Client(base_url=server, timeout=300.0) as http:
                response = _upload(http, *accounts[index], files, name)
            statuses[index] = response.status_code
            if response.status_code not in (201, 422):
                failures.append(f"{name}: {response.status_code} {response.text[:200]}")

        workers = [threading.Thread(target=publish, args=(i,))
                   for i in range(CONCURRENT_PUBLISHES)]
        for worker in workers:
            worker.start()
        with httpx.Client(base_url=server, timeout=30.0) as probe:
            # Poll while the publishes run; at least a few probes even if they finish at once.
            while any(w.is_alive() for w in workers) or len(latencies) < 20:
                started = time.perf_counter()
                response = probe.get("/healthz")
                latencies.append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    failures.append(f"/healthz answered {response.status_code}")
                rss.append(_rss_mb(proc.pid))
        for worker in workers:
            worker.join()
        with httpx.Client(base_url=server, timeout=30.0) as http:
            vetting = [http.get(f"/api/v1/packages/burner{i}/load/versions").json()
                       for i in range(CONCURRENT_PUBLISHES) if statuses[i] == 201]
    finally:
        stop_server(proc)
    figures.record("sandbox.concurrent_publishes", CONCURRENT_PUBLISHES)
    figures.record("sandbox.health_checks", len(latencies))
    figures.record("sandbox.health_p50_ms", _percentile(latencies, 0.50))
    figures.record("sandbox.health_p99_ms", _percentile(latencies, 0.99))
    figures.record("sandbox.server_rss_max_mb", max(rss))
    vetted = sum(1 for releases in vetting if json.dumps(releases[0].get("vetting")) != "null")
    figures.record("sandbox.server_vetted_releases", vetted)
    assert not failures, failures
    assert max(rss) < RSS_BOUND_MB
