# groups: workflow
"""Figures of workflows (plugins/workflow.py).

workflow.step_overhead_ms           per step: a workflow of 8 sequential steps of `base_agent`
                                    minus the same 8 agents created and called directly (median)
workflow.parallel_step_overhead_ms  per step: a fan-out of 4 parallel steps then a join, minus
                                    the same 5 agents called directly one after another (median)

Both sides create their agents through the same warm factory and give them the same tasks, so
the difference is what the workflow adds: planning lookups, mappings, conditions, records and,
for the fan-out, the thread pool. Timings are printed, never asserted.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from _util import emit, median_time

from core.config import FactorySettings
from core.factory import AgentFactory

STEPS = 8
TASK = {"text": "Workflows run agents one after another.\nEach step reads the run's input."}


def sequence() -> dict[str, Any]:
    steps = [{"name": f"s{i}", "agent": "base_agent", "input": {"text": {"from": "/input/text"}}}
             for i in range(STEPS)]
    return {"name": "bench_sequence", "version": "1.0.0", "workflow": {"steps": steps}}


def fan_out() -> dict[str, Any]:
    branches = [{"name": f"b{i}", "agent": "base_agent", "after": [],
                 "input": {"text": {"from": "/input/text"}}} for i in range(4)]
    join = {"name": "join", "agent": "base_agent", "after": [b["name"] for b in branches],
            "input": {"text": {"from": "/steps/b0/output/text"}}}
    return {"name": "bench_fan_out", "version": "1.0.0",
            "workflow": {"steps": [*branches, join], "max_parallel": 4}}


def overhead_ms(factory: AgentFactory, workflow: str, steps: int) -> float:
    agent = factory.create_agent(workflow)

    def through_workflow() -> None:
        agent.process(TASK)

    def direct() -> None:
        for _ in range(steps):
            factory.create_agent("base_agent").process(dict(TASK))

    through_workflow()
    direct()  # warm both paths (template resolution, plan memo, imports)
    with_workflow = median_time(through_workflow, repeat=30, number=20)
    without = median_time(direct, repeat=30, number=20)
    return (with_workflow - without) / steps * 1000


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        for doc in (sequence(), fan_out()):
            (directory / f"{doc['name']}.json").write_text(json.dumps(doc))
        settings = FactorySettings(template_dirs=[directory], hot_reload=False)
        with AgentFactory(settings) as factory:
            emit("workflow.step_overhead_ms", overhead_ms(factory, "bench_sequence", STEPS),
                 "ms", steps=STEPS, target="<= 1")
            emit("workflow.parallel_step_overhead_ms", overhead_ms(factory, "bench_fan_out", 5),
                 "ms", steps=5, width=4)


if __name__ == "__main__":
    main()
