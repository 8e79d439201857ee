"""Uploads that attack vetting at publish, and a probe that samples the server meanwhile.

Used by `test_vetting_attack.py` and by `benchmarks/bench_attack.py` (the figure
`api.healthz_p99_under_attack_ms`); nothing here is a test or asserts anything.

`run_attack(url)` registers a reader, publishes one ordinary package for the probe to read,
then lets two hostile publishers upload as hard as they can from several threads each, never
waiting, whatever the server answers: the "spinner"'s 20 examples each run `while True: pass`
(fuel, then the deadline, stops each), the "blocker"'s each sleep in a WASI call past the
runner's guards (a fresh `time` module: only the worker's kill stops it). Meanwhile one client
requests `/healthz`, the package's detail and a search in turn and times every answer (and,
before the attack starts, `/healthz` alone as many times: the baseline of the machine's own
load). The attack ends once each hostile publisher has had `rounds` uploads vetted and
refused, and the probe has `samples` samples of each kind.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from registry.archive import pack_files
from registry.signing import SigningKey
from tests.registry.factories import package_files

# Reach the interpreter's real `__import__` and `sys.modules`, past the runner's guards (the
# forms of `tests/sandbox/test_backstop.py`).
ESCAPE = (
    "import json\n"
    "real_import = json.__dict__['__builtins__']['__import__']\n"
    "sys = real_import('sys')\n"
)
SPIN = "def process(task):\n    while True:\n        pass\n"
BLOCK = ESCAPE + (
    "def process(task):\n"
    "    sys.modules.pop('time', None)\n"
    "    real_import('time').sleep(600)\n"
    "    return {}\n"
)
SPIN_EXAMPLES = 20  # the most a package may declare


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass(frozen=True)
class Account:
    name: str
    token: str
    key: SigningKey


def register(http: httpx.Client, name: str) -> Account:
    """A new publisher holding namespace `name`, with a signing key on file."""
    answer = http.post("/api/v1/publishers", json={"name": name, "namespace": name})
    answer.raise_for_status()
    token = answer.json()["token"]
    key = SigningKey.generate()
    added = http.post("/api/v1/keys", headers=auth(token),
                      json={"public_key": base64.b64encode(key.public_bytes).decode()})
    added.raise_for_status()
    return Account(name, token, key)


@dataclass(frozen=True)
class Signed:
    """An archive and its signature, ready to send again and again."""

    account: Account
    archive: bytes
    signature: bytes


def sign(account: Account, files: dict[str, bytes], *, bad_signature: bool = False) -> Signed:
    """The package made of `files`, signed by `account` (or with a signature over other bytes:
    the cheapest upload the server refuses, once admitted)."""
    archive = pack_files(files)
    manifest = json.loads(files["agent.json"])
    digest = hashlib.sha256(b"other bytes" if bad_signature else archive).hexdigest()
    signature = account.key.sign_release(digest, manifest["name"], manifest["version"])
    return Signed(account, archive, signature)


def send(http: httpx.Client, signed: Signed) -> httpx.Response:
    return http.post("/api/v1/packages", headers=auth(signed.account.token), timeout=300.0,
                     files={"archive": ("p.zip", signed.archive, "application/zip")},
                     data={"signature": base64.b64encode(signed.signature).decode(),
                           "key_id": signed.account.key.key_id})


def upload(
    http: httpx.Client, account: Account, files: dict[str, bytes], *, bad_signature: bool = False
) -> httpx.Response:
    """Sign and send the package made of `files` (see `sign`)."""
    return send(http, sign(account, files, bad_signature=bad_signature))


def hostile_files(name: str, source: str, examples: int = SPIN_EXAMPLES,
                  version: str = "1.0.0") -> dict[str, bytes]:
    """A package whose `examples` examples all run `source`'s `process`."""
    declared: list[dict[str, Any]] = [
        {"name": f"attack{k}", "input": {"k": k}, "expected": {"never": True}}
        for k in range(examples)
    ]
    files = package_files(name=name, version=version, manifest={"examples": declared})
    files["process.py"] = source.encode()
    return files


@dataclass
class AttackReport:
    # The same probe before the attack starts: what the machine's own load costs.
    baseline_healthz_ms: list[float] = field(default_factory=list)
    healthz_ms: list[float] = field(default_factory=list)
    reads_ms: list[float] = field(default_factory=list)
    # Answers the hostile publishers got, by status.
    attack_statuses: Counter[int] = field(default_factory=Counter)
    probe_failures: list[str] = field(default_factory=list)
    seconds: float = 0.0


def percentile(values: list[float], q: float) -> float:
    """The `q` quantile (0 to 1) of `values`, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_attack(
    url: str, *, threads_per_attacker: int = 3, rounds: int = 2, samples: int = 200,
    max_seconds: float = 300.0,
) -> AttackReport:
    """Attack the server at `url` (see the module's docstring) and report what the probe saw."""
    report = AttackReport()
    with httpx.Client(base_url=url, timeout=60.0) as http:
        reader = register(http, "reader")
        published = upload(http, reader, package_files(name="reader/words"))
        published.raise_for_status()
        attackers = [(register(http, "spinner"), SPIN), (register(http, "blocker"), BLOCK)]
    refused: Counter[str] = Counter()
    lock = threading.Lock()
    stop = threading.Event()

    def attack(account: Account, source: str) -> None:
        signed = sign(account, hostile_files(f"{account.name}/attack", source))
        with httpx.Client(base_url=url, timeout=300.0) as client:
            while not stop.is_set():
                try:
                    status = send(client, signed).status_code
                except httpx.TransportError:
                    status = 0
                with lock:
                    report.attack_statuses[status] += 1
                    if status == 422:
                        refused[account.name] += 1

    threads = [threading.Thread(target=attack, args=attacker, daemon=True)
               for attacker in attackers for _ in range(threads_per_attacker)]
    paths = ("/healthz", "/api/v1/packages/reader/words", "/api/v1/packages?q=words")
    with httpx.Client(base_url=url, timeout=30.0) as probe:
        for _ in range(samples):
            began = time.perf_counter()
            probe.get("/healthz").raise_for_status()
            report.baseline_healthz_ms.append((time.perf_counter() - began) * 1000)
    started = time.monotonic()
    for thread in threads:
        thread.start()
    try:
        with httpx.Client(base_url=url, timeout=30.0) as probe:
            while time.monotonic() - started < max_seconds:
                with lock:
                    done = all(refused[a.name] >= rounds for a, _ in attackers)
                if done and len(report.healthz_ms) >= samples:
                    break
                for path in paths:
                    began = time.perf_counter()
                    answer = probe.get(path)
                    elapsed = (time.perf_counter() - began) * 1000
                    if answer.status_code != 200:
                        report.probe_failures.append(f"{path}: {answer.status_code}")
                    (report.healthz_ms if path == "/healthz" else report.reads_ms).append(elapsed)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    report.seconds = time.monotonic() - started
    return report
