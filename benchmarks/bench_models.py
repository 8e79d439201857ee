# groups: models
"""Figures of the model layer (models/).

models.overhead_ms                 per call (median): a prompt agent's task through the gateway
                                   (render, DLP mask on prompt and output, budget reserve and
                                   settle in the SQLite ledger, audit) minus the time spent in
                                   the provider call it makes (`LlmProvider.complete`, timed
                                   around it), against the local OpenAI-compatible test server
                                   (in a process of its own, as a provider would be)
models.overhead_memory_ledger_ms   the same with the in-memory ledger (what the layer costs
                                   without the database)
models.provider_call_ms            the bare provider call alone, same server, same run (for
                                   scale: an HTTP round trip to a local Python server)
models.dlp_scan_us_per_kb          the DLP detectors over 64 KiB of prose holding a few secrets

Timings are printed, never asserted.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _util import emit

from models.audit import MemoryAuditSink
from models.config import Target, parse_config
from models.context import calling
from models.dlp import detect
from models.gateway import ModelGateway
from models.ledger import MemoryLedger, SpendLedger
from models.ledger_sql import SqlLedger
from models.prompt_agent import PromptSpec, run
from models.providers import CallOptions, LlmProvider, RawCompletion
from models.render import render
from models.types import CallContext, Message

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = 200
TASK = {"text": "Summarize the quarterly report in three sentences for the board.",
        "audience": "the board"}
SPEC = PromptSpec(template="bench", model="fast", system="You summarize. Audience: {audience}.",
                  user="{text}", output_schema=None, max_tokens=64, temperature=None,
                  dlp=None, attempts=1)
PROSE = ("The deployment finished at noon and the team reviewed the logs together. "
         "Nothing unusual was found apart from one warning about disk space.\n")


class TimedProvider:
    """The real provider, with the time spent inside its calls added up."""

    def __init__(self, inner: LlmProvider) -> None:
        self.inner = inner
        self.spent = 0.0

    def complete(self, *args: Any) -> RawCompletion:
        start = time.perf_counter()
        try:
            return self.inner.complete(*args)
        finally:
            self.spent += time.perf_counter() - start


def overhead(api_base: str, ledger: SpendLedger) -> tuple[float, float]:
    """(median layer cost, median bare provider call), in ms."""
    config = parse_config({
        "aliases": {"fast": ["stub:m1"]}, "providers": {"stub": {"api_base": api_base}},
        "dlp": "mask", "retries": 0, "prices": {"m1": {"input_per_1k": 1, "output_per_1k": 1}},
        "budgets": {"run_tokens": 10**12, "agent_day_tokens": 10**12,
                    "account_day_cost": 10.0**9, "call_tokens": 10**6},
    }, "bench")
    provider = LlmProvider(config)
    timed = TimedProvider(provider)
    gateway = ModelGateway(config, ledger, provider=timed, audit=MemoryAuditSink())
    target = Target("stub", "m1")
    options = CallOptions(config.timeout_s, 64)
    messages = (Message("system", render(SPEC.system, TASK, "bench", "system")),
                Message("user", render(SPEC.user, TASK, "bench", "user")))
    context = CallContext(account="bench", run_id="run-1")

    def bare() -> None:
        provider.complete(target, messages, options, None)

    def full() -> None:
        with calling(context, gateway):
            run(SPEC, TASK, gateway, context)

    for _ in range(20):  # warm: imports, connections, the ledger's file
        bare()
        full()
    layer, calls = [], []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        bare()
        middle = time.perf_counter()
        timed.spent = 0.0
        full()
        layer.append(time.perf_counter() - middle - timed.spent)
        calls.append(middle - start)
    return statistics.median(layer) * 1000, statistics.median(calls) * 1000


def dlp_us_per_kb() -> float:
    text = (PROSE * 400)[: 60 * 1024] + " key AKIAIOSFODNN7EXAMPLF card 4111 1111 1111 1111 " + \
        "mail jane.doe@example.com " + PROSE * 40
    text = text[: 64 * 1024]
    detect(text)
    samples = []
    for _ in range(20):
        start = time.perf_counter()
        detect(text)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6 / (len(text.encode()) / 1024)


@contextmanager
def stub_process() -> Iterator[str]:
    """The local model server in a process of its own; its API base. In this process (a thread)
    it would take the GIL whenever the layer lets it go (a SQLite commit, a socket read), and
    the layer's figure would carry the stub's work."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.models.openai_stub_server"], cwd=ROOT,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)


def main() -> None:
    with stub_process() as api_base:
        with tempfile.TemporaryDirectory() as tmp:
            ledger = SqlLedger.local(Path(tmp) / "usage.db")
            layer, call = overhead(api_base, ledger)
            ledger.engine.dispose()
        emit("models.overhead_ms", layer, "ms", rounds=ROUNDS, ledger="sqlite")
        emit("models.provider_call_ms", call, "ms", rounds=ROUNDS)
        emit("models.overhead_memory_ledger_ms", overhead(api_base, MemoryLedger())[0], "ms",
             rounds=ROUNDS)
    emit("models.dlp_scan_us_per_kb", dlp_us_per_kb(), "us/KiB")


if __name__ == "__main__":
    main()
