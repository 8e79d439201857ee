"""Tests of the built-in agent plugins, and the one helper they share: a sandboxed run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The cache the sandbox tests use, so the runner is compiled at most once for the whole suite.
SANDBOX_CACHE = ROOT / ".pytest_cache" / "agentfactory"


def run_in_sandbox(name: str, task: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run `plugins/logic/<name>.py` as a published package's `process.py` in the sandbox."""
    from sandbox import Sandbox, TaskStatus

    monkeypatch.setenv("AGENTFACTORY_CACHE", str(SANDBOX_CACHE))
    source = (ROOT / "plugins" / "logic" / f"{name}.py").read_text(encoding="utf-8")
    result = Sandbox().run_one(source, task)
    assert result.status is TaskStatus.OK, result.error
    return result.value
