# groups: factory templates
"""Figures of the agent factory and the template manager.

factory.create_warm_us   create one agent from a warm cache (median, microseconds)
factory.bulk_10k_ms      bulk_create 10,000 agents of one warm template (median, milliseconds)
templates.cold_load_us   load + validate three files and resolve a 3-level extends chain (median)
templates.hot_reload_ms  from a file write to the new content being served, with watchdog (median)

Timings are printed, never asserted.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from _util import emit, median_time

from core.config import FactorySettings
from core.factory import AgentFactory
from core.inheritance import resolve
from core.loader import load_template_file
from core.manager import ReloadEvent
from core.template import AgentTemplate

PREFIX = sys.argv[1] if len(sys.argv) > 1 else ""


def write(directory: Path, doc: dict[str, object]) -> Path:
    path = directory / f"{doc['name']}.json"
    tmp = directory / f".{path.name}.tmp"
    tmp.write_text(json.dumps(doc))
    tmp.replace(path)
    return path


def chain_docs() -> list[dict[str, object]]:
    return [
        {
            "name": "root",
            "version": "1.0.0",
            "implementation": "base_agent",
            "capabilities": ["read", "stats"],
            "tools": ["text_reader"],
            "model": {"provider": "local", "name": "deterministic", "parameters": {"t": 0.0}},
            "prompts": {"system": "root", "task": "do {text}"},
            "parameters": {"max_chars": 100},
        },
        {
            "name": "middle",
            "version": "1.1.0",
            "extends": "root",
            "capabilities": ["analyse"],
            "tools": ["regex_search"],
            "prompts": {"report": "r"},
            "parameters": {"limits": {"findings": 10}},
        },
        {
            "name": "leaf",
            "version": "1.2.0",
            "extends": "middle",
            "$remove": {"capabilities": ["stats"]},
            "capabilities": ["mask"],
            "model": {"parameters": {"top_p": 0.9}},
            "metadata": {"tags": ["bench"]},
        },
    ]


def bench_factory(directory: Path) -> None:
    settings = FactorySettings(template_dirs=[directory])
    with AgentFactory(settings) as factory:
        factory.create_agent("leaf")  # warm the cache
        if "factory.create_warm_us".startswith(PREFIX) or PREFIX == "factory":
            seconds = median_time(lambda: factory.create_agent("leaf"), repeat=200, number=200)
            emit("factory.create_warm_us", seconds * 1e6, "us", target=20)
        if "factory.bulk_10k_ms".startswith(PREFIX) or PREFIX == "factory":
            specs = [("leaf", None)] * 10_000
            seconds = median_time(lambda: factory.bulk_create(specs), repeat=9)
            emit("factory.bulk_10k_ms", seconds * 1e3, "ms", target=300)


def bench_cold_load(directory: Path) -> None:
    paths = [directory / "root.json", directory / "middle.json", directory / "leaf.json"]

    def cold() -> AgentTemplate:
        loaded = {t.name: t for t in (load_template_file(p) for p in paths)}
        return resolve("leaf", loaded.get)

    cold()
    seconds = median_time(cold, repeat=300)
    emit("templates.cold_load_us", seconds * 1e6, "us", target=1000)


def bench_hot_reload(directory: Path) -> None:
    settings = FactorySettings(template_dirs=[directory], hot_reload=True)
    with AgentFactory(settings) as factory:
        manager = factory.templates
        served = threading.Event()
        expected = [""]

        def on_reload(event: ReloadEvent) -> None:
            touched = "leaf" in event.names or "root" in event.names
            if touched and manager.get("leaf").description == expected[0]:
                served.set()

        manager.on_reload(on_reload)
        samples = []
        root = chain_docs()[0]
        for i in range(15):
            served.clear()
            expected[0] = f"edit {i}"
            start = time.perf_counter()
            write(directory, {**root, "description": f"edit {i}"})
            if not served.wait(10):
                print(f"reload {i} not seen within 10 s", file=sys.stderr)
                continue
            samples.append(time.perf_counter() - start)
        if samples:
            emit(
                "templates.hot_reload_ms",
                statistics.median(samples) * 1e3,
                "ms",
                target=500,
                p_max=round(max(samples) * 1e3, 3),
            )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        for doc in chain_docs():
            write(directory, doc)
        if PREFIX.split(".")[0] in ("", "factory"):
            bench_factory(directory)
        if "templates.cold_load_us".startswith(PREFIX):
            bench_cold_load(directory)
        if "templates.hot_reload_ms".startswith(PREFIX):
            bench_hot_reload(directory)


if __name__ == "__main__":
    main()
