# groups: models
"""What a model call costs a sandboxed agent over a native one (sandbox/host_models.py).

models.sandbox_call_overhead_ms   per call (median of rounds): a guest in a worker process makes
                                  CALLS model calls in one task through `agentfactory_guest`
                                  (the WIT import, the worker's pipe to this process, the host's
                                  checks, the gateway, back); from that task's time are
                                  subtracted the same task without calls and the time spent in
                                  `ModelGateway.complete` (timed around it: exactly what a native
                                  agent's call costs), divided by CALLS. Subtracting separately
                                  timed native calls instead would bury the figure in the noise
                                  of the HTTP calls to the local server
models.sandbox_call_overhead_in_process_ms
                                  the same with the guest in this process (no worker, no pipe:
                                  what the WIT import and the guest's own JSON cost)
models.native_call_ms             a native call through the same gateway, for scale

Timings are printed, never asserted.
"""

from __future__ import annotations

import statistics
import time

from _util import emit

from models.audit import MemoryAuditSink
from models.config import parse_config
from models.gateway import ModelGateway
from models.ledger import MemoryLedger
from models.types import CallContext, Completion, CompletionRequest, Message
from sandbox import AgentSource, Sandbox
from sandbox.host_models import GatewayHost
from sandbox.pool import WorkerPool
from tests.models.openai_stub_server import StubServer


class TimedGateway(ModelGateway):
    """The real gateway, with the time spent inside its calls added up."""

    spent = 0.0

    def complete(self, request: CompletionRequest) -> Completion:
        start = time.perf_counter()
        try:
            return super().complete(request)
        finally:
            self.spent += time.perf_counter() - start


CALLS = 20
ROUNDS = 15
GUEST = """
from agentfactory_guest import complete

def process(task):
    for _ in range(task["calls"]):
        complete("fast", [{"role": "user", "content": "Say hello."}], max_tokens=16)
    return {}
"""


def main() -> None:
    stub = StubServer().start()
    try:
        config = parse_config({"aliases": {"fast": ["stub:m1"]}, "retries": 0,
                               "providers": {"stub": {"api_base": stub.api_base}}}, "bench")
        gateway = TimedGateway(config, MemoryLedger(), audit=MemoryAuditSink())
        context = CallContext(account="bench", agent="bench", run_id="run-1",
                              allowed_models=("fast",))
        request = CompletionRequest("fast", (Message("user", "Say hello."),), max_tokens=16,
                                    context=context)
        source = AgentSource({"process.py": GUEST})
        in_process = Sandbox(isolation="in-process")
        with WorkerPool(1) as pool:
            box = Sandbox(pool=pool)
            box.ensure_ready()
            in_process.ensure_ready()

            def sandboxed(calls: int, box: Sandbox = box) -> float:
                """The task's time, minus the time spent in the gateway."""
                host = GatewayHost(gateway, context)
                gateway.spent = 0.0
                start = time.perf_counter()
                [result] = box.run(source, [{"calls": calls}], host=host)
                assert result.ok, result.error
                return time.perf_counter() - start - gateway.spent

            def native() -> float:
                start = time.perf_counter()
                for _ in range(CALLS):
                    gateway.complete(request)
                return time.perf_counter() - start

            for _ in range(3):  # warm: imports, connections, the worker
                native()
                sandboxed(CALLS)
                sandboxed(0)
            overheads, local, bare = [], [], []
            for _ in range(ROUNDS):
                bare.append(native() / CALLS)
                with_calls = sandboxed(CALLS)
                overheads.append((with_calls - sandboxed(0)) / CALLS)
                with_calls = sandboxed(CALLS, in_process)
                local.append((with_calls - sandboxed(0, in_process)) / CALLS)
    finally:
        stub.stop()
    emit("models.sandbox_call_overhead_ms", statistics.median(overheads) * 1000, "ms",
         rounds=ROUNDS, calls=CALLS, isolation="process")
    emit("models.sandbox_call_overhead_in_process_ms", statistics.median(local) * 1000, "ms",
         rounds=ROUNDS, calls=CALLS, isolation="in-process")
    emit("models.native_call_ms", statistics.median(bare) * 1000, "ms", rounds=ROUNDS)


if __name__ == "__main__":
    main()
