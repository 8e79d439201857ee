"""The abuse corpus: hostile agents end in the right typed result, and the next call works."""

from __future__ import annotations

import pytest

from sandbox import Sandbox, SandboxLimits, TaskStatus

pytestmark = pytest.mark.sandbox

NOT_AVAILABLE = "not available in the sandbox"
ECHO = "def process(task):\n    return {'echo': task}\n"
# Reach the real `__import__` around the guest's import hook, to test the WASI layer beneath it.
ESCAPE = "import json\nreal_import = json.__dict__['__builtins__']['__import__']\n"


def body(code: str, prelude: str = "") -> str:
    lines = "\n".join("    " + line for line in code.strip().splitlines())
    return f"{prelude}def process(task):\n{lines}\n"


CASES: list[tuple[str, str, TaskStatus, str]] = [
    ("memory bomb", body("x = []\nwhile True:\n    x.append('a' * 10**6)"),
     TaskStatus.OUT_OF_MEMORY, "MemoryError"),
    ("huge allocation", body("return len(bytearray(10**9))"), TaskStatus.OUT_OF_MEMORY, ""),
    ("deep recursion", "def f(n):\n    return f(n + 1)\n" + body("return f(0)"),
     TaskStatus.AGENT_ERROR, "RecursionError"),
    ("read /etc/passwd", body("return open('/etc/passwd').read()"),
     TaskStatus.AGENT_ERROR, "no filesystem"),
    ("read /etc/passwd via io", body("return io.open('/etc/passwd').read()", "import io\n"),
     TaskStatus.AGENT_ERROR, "FileNotFoundError"),
    ("list the root", body("return real_import('os').listdir('/')", ESCAPE),
     TaskStatus.AGENT_ERROR, "FileNotFoundError"),
    ("write a file", body("io.FileIO('/tmp/pwned', 'w').write(b'x')", "import io\n"),
     TaskStatus.AGENT_ERROR, "FileNotFoundError"),
    ("open a socket", body("import socket"), TaskStatus.AGENT_ERROR, NOT_AVAILABLE),
    ("socket past the hook", body("real_import('socket')", ESCAPE),
     TaskStatus.AGENT_ERROR, "No module named 'socket'"),
    ("subprocess", body("import subprocess\nsubprocess.run(['ls'])"),
     TaskStatus.AGENT_ERROR, NOT_AVAILABLE),
    ("os.system past the hook", body("real_import('os').system('ls')", ESCAPE),
     TaskStatus.AGENT_ERROR, "has no attribute 'system'"),
    ("ctypes", body("import ctypes"), TaskStatus.AGENT_ERROR, NOT_AVAILABLE),
    ("threads", body("import threading"), TaskStatus.AGENT_ERROR, NOT_AVAILABLE),
    ("raw threads past the hook",
     body("real_import('_thread').start_new_thread(print, ())", ESCAPE),
     TaskStatus.AGENT_ERROR, "can't start new thread"),
    ("time.sleep(60)", body("time.sleep(60)", "import time\n"),
     TaskStatus.AGENT_ERROR, NOT_AVAILABLE),
    ("select past the hook", body("real_import('select').select([], [], [], 60)", ESCAPE),
     TaskStatus.AGENT_ERROR, NOT_AVAILABLE),
    ("10 MB result", body("return {'x': 'x' * 10 * 2**20}"), TaskStatus.OUTPUT_TOO_LARGE, ""),
    ("10 MB printed", body("print('x' * 10 * 2**20)\nreturn {}"), TaskStatus.OUTPUT_TOO_LARGE, ""),
    ("printing swallowed by except", body("try:\n    print('x' * 10 * 2**20)\nexcept Exception:\n"
                                          "    pass\nreturn {}"), TaskStatus.OUTPUT_TOO_LARGE, ""),
    ("non-JSON result", body("return {1, 2}"), TaskStatus.BAD_OUTPUT, "set"),
    ("NaN result", body("return {'x': float('nan')}"), TaskStatus.BAD_OUTPUT, ""),
    ("exception", body("raise ValueError('bad task')"), TaskStatus.AGENT_ERROR,
     "ValueError: bad task"),
    ("sys.exit", body("raise SystemExit(3)"), TaskStatus.AGENT_ERROR, "SystemExit"),
    ("import off the allow-list", "import os\n" + body("return {}"), TaskStatus.AGENT_ERROR,
     "ImportError: module 'os' is not available in the sandbox (allowed: "),
    ("syntax error", "def process(task)\n    return {}\n", TaskStatus.AGENT_ERROR, "SyntaxError"),
    ("no process function", "def other(task):\n    return {}\n", TaskStatus.AGENT_ERROR,
     "no function 'process'"),
]


@pytest.mark.parametrize(("code", "status", "needle"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_abuse_ends_in_typed_result_and_next_call_works(
    sandbox: Sandbox, code: str, status: TaskStatus, needle: str
) -> None:
    result = sandbox.run_one(code, {"n": 1}, limits=SandboxLimits(memory_bytes=96 * 2**20))
    assert result.status is status, result
    assert needle in result.error + result.traceback
    after = sandbox.run_one(ECHO, {"n": 2})
    assert after.ok and after.value == {"echo": {"n": 2}}


def test_infinite_loop_stopped_by_fuel(sandbox: Sandbox) -> None:
    limits = SandboxLimits(fuel=50_000_000, timeout_s=600)
    result = sandbox.run_one(body("while True:\n    pass"), {}, limits=limits)
    assert result.status is TaskStatus.OUT_OF_FUEL
    assert result.fuel_used == 50_000_000
    assert sandbox.run_one(ECHO, {}).ok


def test_infinite_loop_stopped_by_deadline(sandbox: Sandbox) -> None:
    limits = SandboxLimits(fuel=10**18, timeout_s=0.05)
    result = sandbox.run_one(body("while True:\n    pass"), {}, limits=limits)
    assert result.status is TaskStatus.TIMEOUT
    assert sandbox.run_one(ECHO, {}).ok


def test_loop_in_module_body_is_stopped_while_loading(sandbox: Sandbox) -> None:
    code = "while True:\n    pass\n" + body("return {}")
    result = sandbox.run_one(code, {}, limits=SandboxLimits(fuel=50_000_000))
    assert result.status is TaskStatus.OUT_OF_FUEL


def test_changed_builtins_and_globals_do_not_leak_between_calls(sandbox: Sandbox) -> None:
    poison = (
        "import json\n"
        "json.dumps = lambda *a, **k: '\"poisoned\"'\n"
        "json.__dict__['__builtins__']['len'] = lambda x: -1\n"
        "COUNT = 0\n"
        "def process(task):\n"
        "    global COUNT\n"
        "    COUNT += 1\n"
        "    return {'count': COUNT}\n"
    )
    sandbox.run_one(poison, {})
    observe = "import json\n" + body("return {'len': len('abc'), 'dump': json.dumps(1)}")
    assert sandbox.run_one(observe, {}).value == {"len": 3, "dump": "1"}
    counter = body("global COUNT\nCOUNT = globals().get('COUNT', 0) + 1\nreturn {'count': COUNT}")
    assert [r.value for r in sandbox.run(counter, [{}, {}])] == [{"count": 1}, {"count": 1}]


def test_reused_instance_keeps_globals_within_one_call_only(sandbox: Sandbox) -> None:
    counter = body("global COUNT\nCOUNT = globals().get('COUNT', 0) + 1\nreturn {'count': COUNT}")
    values = [r.value for r in sandbox.run(counter, [{}, {}, {}], reuse_instance=True)]
    assert values == [{"count": 1}, {"count": 2}, {"count": 3}]
    assert sandbox.run_one(counter, {}).value == {"count": 1}


def test_trap_in_reused_instance_does_not_stop_the_next_tasks(sandbox: Sandbox) -> None:
    code = body("if task.get('spin'):\n    while True:\n        pass\nreturn {'ok': True}")
    results = sandbox.run(
        code, [{}, {"spin": True}, {}], reuse_instance=True, limits=SandboxLimits(fuel=50_000_000)
    )
    assert [r.status for r in results] == [TaskStatus.OK, TaskStatus.OUT_OF_FUEL, TaskStatus.OK]


def test_memory_limit_below_the_interpreter_is_a_typed_result(sandbox: Sandbox) -> None:
    result = sandbox.run_one(ECHO, {}, limits=SandboxLimits(memory_bytes=2**20))
    assert result.status is TaskStatus.OUT_OF_MEMORY
    assert "below the runner" in result.error
