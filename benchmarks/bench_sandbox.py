# groups: sandbox
"""Sandbox figures: build, load, one task per fresh instance, 100 tasks per instance, overhead.

Uses a private cache directory so `sandbox.build_s` measures a real first build (componentize +
compile), then the default limits (fuel and deadline enforced) for every call. Calls go through
the default isolation (warm worker processes with the deadline backstop) unless the figure's name
says `in_process`.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import emit, median_time

AGENT = """
import json, re
WORD = re.compile(r"[a-z']+")
def process(task):
    words = WORD.findall(task["text"].lower())
    counts = {}
    for word in words:
        counts[word] = counts.get(word, 0) + 1
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    return {"words": len(words), "top": top}
"""
TASK = {"text": "The sandbox runs the agents that strangers wrote, and the agents run fast. " * 4}


def main(prefix: str) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as cache:
        os.environ["AGENTFACTORY_CACHE"] = cache
        from sandbox import Sandbox
        from sandbox import build as builder

        started = time.perf_counter()
        builder.load_or_build(builder.make_engine())
        emit("sandbox.build_s", time.perf_counter() - started, "s")

        engine = builder.make_engine()
        loads = []
        for _ in range(5):
            t0 = time.perf_counter()
            builder.load_or_build(engine)
            loads.append(time.perf_counter() - t0)
        emit("sandbox.load_ms", statistics.median(loads) * 1000, "ms")

        box = Sandbox()  # the default: worker processes with the deadline backstop
        box.ensure_ready()
        box.run_one(AGENT, TASK)
        call_1 = median_time(lambda: box.run_one(AGENT, TASK), repeat=50)
        emit("sandbox.call_1_ms", call_1 * 1000, "ms")
        inline = Sandbox(isolation="in-process")
        inline.run_one(AGENT, TASK)
        call_1_inline = median_time(lambda: inline.run_one(AGENT, TASK), repeat=50)
        emit("sandbox.call_1_in_process_ms", call_1_inline * 1000, "ms")
        emit("sandbox.tasks_per_s_fresh", 1 / call_1, "tasks/s")
        tasks = [TASK] * 100
        call_100 = median_time(lambda: box.run(AGENT, tasks, reuse_instance=True), repeat=10)
        emit("sandbox.call_100_ms", call_100 * 1000, "ms")
        emit("sandbox.tasks_per_s", 100 / call_100, "tasks/s")

        namespace: dict[str, object] = {}
        exec(AGENT, namespace)
        native = namespace["process"]
        assert callable(native)
        native_1 = median_time(lambda: native(TASK), repeat=50, number=100)
        emit("sandbox.overhead_x", (call_100 / 100) / native_1, "x", native_us=native_1 * 1e6)
        emit("sandbox.overhead_fresh_x", call_1 / native_1, "x")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "")
