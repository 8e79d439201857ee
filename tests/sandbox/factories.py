"""Test packages for vetting and the plugin: real archives, read back by the registry."""

from __future__ import annotations

import json
from typing import Any

from registry.archive import Package, build_files, read_archive

DOUBLER = "def process(task):\n    return {'double': task['n'] * 2, 'label': f\"n={task['n']}\"}\n"


def make_package(
    source: str = DOUBLER,
    *,
    name: str = "acme/doubler",
    examples: list[dict[str, Any]] | None = None,
    tools: list[str] | None = None,
    extra_files: dict[str, str] | None = None,
    entry: str = "process.py:process",
) -> Package:
    short = name.split("/")[1]
    manifest = {
        "name": name, "version": "1.0.0", "summary": "Doubles numbers", "license": "MIT",
        "authors": ["Test <t@example.org>"], "keywords": ["math"], "entry": entry,
        "templates": [f"templates/{short}.json"], "permissions": [],
        "examples": examples if examples is not None else [
            {"name": "two", "input": {"n": 2}, "expected": {"double": 4, "label": "n=2"}},
            {"name": "checks", "input": {"n": 5}, "checks": [
                {"path": "double", "op": "gte", "value": 10},
                {"path": "label", "op": "matches", "value": "^n=5$"},
            ]},
        ],
    }
    template = {"name": name, "version": "1.0.0", "description": "Doubles numbers",
                "capabilities": ["math"], "tools": tools or []}
    files = {
        "agent.json": json.dumps(manifest).encode(),
        f"templates/{short}.json": json.dumps(template).encode(),
        entry.partition(":")[0]: source.encode(),
        "README.md": b"# doubler\n",
    }
    for path, text in (extra_files or {}).items():
        files[path] = text.encode()
    return read_archive(build_files(files))
