"""The process backstop: a task ends at its deadline even when the guest blocks in a host call.

Each blocking attack reaches a WASI `poll` past the runner's guards (fuel and the epoch cannot
interrupt it); the worker running it is killed at deadline + grace, the task is `timeout`, and
the next call works. Elapsed times are checked only loosely (deadline + 5 s): the point is that
the call returns, not how fast.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sandbox import Sandbox, SandboxLimits, TaskStatus
from sandbox.pool import WorkerPool
from sandbox.runtime import Isolation

pytestmark = pytest.mark.sandbox

ROOT = Path(__file__).resolve().parents[2]
ECHO = "def process(task):\n    return {'echo': task}\n"
# Reach the interpreter's real `__import__` and `sys.modules`, past the runner's guards.
ESCAPE = (
    "import json\n"
    "real_import = json.__dict__['__builtins__']['__import__']\n"
    "sys = real_import('sys')\n"
)
DEADLINE_S = 0.5
SLACK_S = 5.0


def body(code: str) -> str:
    lines = "\n".join("    " + line for line in code.strip().splitlines())
    return f"{ESCAPE}def process(task):\n{lines}\n    return {{}}\n"


BLOCKING = {
    # A fresh `time` module has the real sleep: the runner only patched the old module object.
    "sleep in a fresh time module": body("sys.modules.pop('time')\nreal_import('time').sleep(600)"),
    "select with a timeout": body(
        "sys.modules.pop('select')\nreal_import('select').select([], [], [], 600)"
    ),
    "select.poll": body("sys.modules.pop('select')\nreal_import('select').poll().poll(600_000)"),
    "sleep in a loop": body(
        "sys.modules.pop('time')\nt = real_import('time')\nwhile True:\n    t.sleep(5)"
    ),
    "sleep while loading": ESCAPE
    + "sys.modules.pop('time')\nreal_import('time').sleep(600)\n"
    + ECHO,
}


def assert_timed_out(result: object, started: float) -> None:
    elapsed = time.monotonic() - started
    assert getattr(result, "status", None) is TaskStatus.TIMEOUT, result
    assert elapsed < DEADLINE_S + SLACK_S, f"returned after {elapsed:.1f} s"


@pytest.mark.parametrize("code", list(BLOCKING.values()), ids=list(BLOCKING))
def test_blocking_host_call_ends_at_the_deadline(sandbox: Sandbox, code: str) -> None:
    started = time.monotonic()
    result = sandbox.run_one(code, {}, limits=SandboxLimits(timeout_s=DEADLINE_S))
    assert_timed_out(result, started)
    assert "blocked in a host call" in result.error
    assert sandbox.run_one(ECHO, {"n": 1}).value == {"echo": {"n": 1}}


def test_blocking_task_among_others_keeps_their_order(sandbox: Sandbox) -> None:
    code = ESCAPE + (
        "def process(task):\n"
        "    if task.get('block'):\n"
        "        sys.modules.pop('time')\n"
        "        real_import('time').sleep(600)\n"
        "    return {'n': task['n']}\n"
    )
    tasks = [{"n": 1}, {"n": 2, "block": True}, {"n": 3}]
    for reuse in (False, True):
        started = time.monotonic()
        results = sandbox.run(
            code, tasks, reuse_instance=reuse, limits=SandboxLimits(timeout_s=DEADLINE_S)
        )
        assert [r.status for r in results] == [TaskStatus.OK, TaskStatus.TIMEOUT, TaskStatus.OK]
        assert [results[0].value, results[2].value] == [{"n": 1}, {"n": 3}]
        assert time.monotonic() - started < 2 * DEADLINE_S + SLACK_S


def test_a_killed_worker_is_replaced_and_the_pool_works_on() -> None:
    with WorkerPool(size=1) as pool:
        box = Sandbox(pool=pool)
        box.ensure_ready()
        [before] = pool.pids()
        result = box.run_one(BLOCKING["select.poll"], {}, limits=SandboxLimits(timeout_s=0.2))
        assert result.status is TaskStatus.TIMEOUT
        [after] = pool.pids()
        assert after != before and pool.replaced == 1
        assert not _alive(before)
        assert box.run_one(ECHO, {"n": 2}).value == {"echo": {"n": 2}}


def test_a_worker_killed_from_outside_is_a_typed_result() -> None:
    with WorkerPool(size=1) as pool:
        box = Sandbox(pool=pool)
        box.ensure_ready()
        [pid] = pool.pids()
        os.kill(pid, signal.SIGKILL)
        result = box.run_one(ECHO, {})
        assert result.status is TaskStatus.AGENT_ERROR
        assert "sandbox worker process" in result.error
        assert box.run_one(ECHO, {"n": 3}).value == {"echo": {"n": 3}}


def test_no_worker_is_left_after_the_pool_closes() -> None:
    pool = WorkerPool(size=2)
    box = Sandbox(pool=pool)
    box.ensure_ready()
    box.run_one(BLOCKING["select with a timeout"], {}, limits=SandboxLimits(timeout_s=0.2))
    pids = pool.pids()
    assert pids
    pool.close()
    assert pool.pids() == []
    assert not any(_alive(pid) for pid in pids)  # gone and reaped: no zombie either
    with pytest.raises(Exception, match="closed"):
        box.run_one(ECHO, {})


def test_workers_die_with_their_parent(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from sandbox.pool import WorkerPool\n"
        "pool = WorkerPool(size=2)\n"
        "pool.warm()\n"
        "print(*pool.pids(), flush=True)\n"
        "sys.stdin.read()\n"  # wait to be killed
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    pids = [int(pid) for pid in parent.stdout.readline().split()]
    assert pids
    handles = [os.pidfd_open(pid) for pid in pids]
    try:
        parent.kill()  # SIGKILL: no atexit, no cleanup in the parent
        parent.wait()
        for handle in handles:  # a pidfd turns readable when its process exits
            assert select.select([handle], [], [], 30)[0] == [handle]
    finally:
        for handle in handles:
            os.close(handle)


def test_in_process_isolation_runs_the_same_code(sandbox: Sandbox) -> None:
    box = Sandbox(isolation=Isolation.IN_PROCESS)
    assert box.run_one(ECHO, {"n": 4}).value == {"echo": {"n": 4}}
    result = box.run_one("def process(task):\n    return {1}\n", {})
    assert result.status is TaskStatus.BAD_OUTPUT
    with pytest.raises(Exception, match="unknown sandbox isolation"):
        Sandbox(isolation="thread")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
