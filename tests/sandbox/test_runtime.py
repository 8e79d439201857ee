"""What a well-behaved agent can do in the sandbox, and how bad host input is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox import AgentSource, Sandbox, TaskStatus
from sandbox.errors import InvalidAgentSource, SandboxError
from sandbox.guest.allowlist import ALLOWED_MODULES
from sandbox.limits import SandboxLimits

pytestmark = pytest.mark.sandbox

LOGIC = Path(__file__).resolve().parents[2] / "plugins" / "logic"


def test_every_allowed_module_imports(sandbox: Sandbox) -> None:
    imports = "\n".join(f"import {name}" for name in ALLOWED_MODULES)
    code = f"from __future__ import annotations\n{imports}\nimport html.parser\n" \
           "import collections.abc\ndef process(task):\n    return {'ok': True}\n"
    assert sandbox.run_one(code, {}).value == {"ok": True}


def test_stdout_is_captured_and_returned(sandbox: Sandbox) -> None:
    result = sandbox.run_one("def process(task):\n    print('hello')\n    return {}\n", {})
    assert result.ok and result.stdout == "hello\n"


def test_multi_file_source_with_relative_imports(sandbox: Sandbox) -> None:
    source = AgentSource(
        {
            "main.py": "from pkg import helper\ndef run(task):\n    return helper.go(task)\n",
            "pkg/__init__.py": "",
            "pkg/helper.py": "from .consts import K\ndef go(task):\n    return {'k': K}\n",
            "pkg/consts.py": "K = 7\n",
        },
        entry="main.py:run",
    )
    assert sandbox.run_one(source, {}).value == {"k": 7}


def test_many_tasks_keep_their_order_and_statuses(sandbox: Sandbox) -> None:
    code = "def process(task):\n    return {'inv': 1 / task['n']}\n"
    results = sandbox.run(code, [{"n": 1}, {"n": 0}, {"n": 4}], reuse_instance=True)
    assert [r.status for r in results] == [TaskStatus.OK, TaskStatus.AGENT_ERROR, TaskStatus.OK]
    assert results[2].value == {"inv": 0.25}
    assert "ZeroDivisionError" in results[1].traceback


def test_bad_host_input_is_a_typed_error(sandbox: Sandbox) -> None:
    with pytest.raises(InvalidAgentSource, match="entry must look like"):
        AgentSource({"a.py": ""}, entry="a.py")
    with pytest.raises(InvalidAgentSource, match=r"no file 'b\.py'"):
        AgentSource({"a.py": ""}, entry="b.py:process")
    with pytest.raises(InvalidAgentSource, match="relative posix"):
        AgentSource({"a.py": "", "../x.py": ""}, entry="a.py:process")
    with pytest.raises(InvalidAgentSource, match="not JSON"):
        sandbox.run("def process(t):\n    return t\n", [{"x": {1, 2}}])
    with pytest.raises(SandboxError, match="timeout_s"):
        SandboxLimits(timeout_s=-1)


@pytest.mark.skipif(not LOGIC.is_dir(), reason="built-in logic files not written yet")
def test_builtin_logic_file_runs_unchanged(sandbox: Sandbox) -> None:
    source = (LOGIC / "documentaliste.py").read_text(encoding="utf-8")
    text = "# Title\n\nThe sandbox runs agents. Agents are written by strangers. It is safe.\n"
    result = sandbox.run_one(source, {"text": text})
    assert result.ok, result.traceback or result.error
    assert isinstance(result.value, dict) and result.value
