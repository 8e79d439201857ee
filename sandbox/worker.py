"""The sandbox worker process, and the wire format between it and the pool.

A worker is a fresh interpreter started by `sandbox.pool` (fork + exec, like multiprocessing's
`spawn`: never a bare fork of a process that holds threads or Wasmtime engines, and unlike
`spawn` it does not re-import the parent's `__main__`). It deserializes the compiled runner
once, answers `READY`, then serves requests for as long as its parent wants: one request in (a
`RunRequest` as JSON), one message out per task, as soon as that task ends.

Wire format (each message is one `Connection.send_bytes` frame):

- parent -> worker: `RunRequest.to_wire()`.
- worker -> parent: a header (compact JSON, one line) then `\\n` then a body. A guest outcome has
  `{"fuel_used": int, "duration_ms": float}` and the runner's outcome text (UTF-8) as body; a
  result the host made has `{"result": {"status", "error", "fuel_used", "duration_ms"}}` and no
  body. Outcomes longer than the caller could accept are replaced by an `output_too_large` result
  here, so they never cross the pipe.
- worker -> parent, while a task runs: a guest's model call (`sandbox.host_models.HostCall`);
  the parent answers it (`answer_to_wire`) before the task goes on.

Invariants: a worker has no stdin or stdout and writes to stderr only if the interpreter itself
fails; it runs in its own session and ignores SIGINT (the parent decides); it exits when its
parent goes away, even mid-task: a watchdog thread blocks on a lifeline pipe whose only writer
is the parent, and its EOF ends the process (`PR_SET_PDEATHSIG` is not used: it fires when the
*thread* that started the worker exits, and pool threads come and go). `decode_step` treats every
message as untrusted and raises only `WireError`. A worker runs at a lower CPU priority
(`WORKER_NICE`): a guest spinning as hard as it can gets the cores only when the server that
started it (its health checks, its reads) does not want them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from dataclasses import replace
from multiprocessing.connection import Connection
from typing import Any

from core.context import set_correlation_id
from sandbox.engine import Engine, GuestOutcome, RunRequest, Step
from sandbox.host_models import PipeHost
from sandbox.outcome import ERROR_CAP, outcome_cap
from sandbox.results import TaskResult, TaskStatus

READY = b"ready"
HEADER_CAP = 4096


class WireError(ValueError):
    """A worker's message is not in the wire format; `status` says how to report the task."""

    def __init__(self, status: TaskStatus, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(reason)


def message_cap(max_output: int) -> int:
    """The largest worker message a parent accepts for a task under `max_output`."""
    return 4 * outcome_cap(max_output) + HEADER_CAP  # UTF-8 takes up to 4 bytes a character


def encode_step(step: Step, max_output: int) -> bytes:
    if isinstance(step, GuestOutcome):
        header = {"fuel_used": step.fuel_used, "duration_ms": step.duration_ms}
        measured = TaskResult(
            TaskStatus.BAD_OUTPUT, fuel_used=step.fuel_used, duration_ms=step.duration_ms
        )
        if len(step.text) <= outcome_cap(max_output):
            try:
                return json.dumps(header).encode() + b"\n" + step.text.encode()
            except UnicodeEncodeError:
                step = replace(measured, error="outcome is not valid Unicode")
        else:
            step = replace(
                measured,
                status=TaskStatus.OUTPUT_TOO_LARGE,
                error=f"outcome is {len(step.text)} characters",
            )
    result = {
        "status": step.status.value,
        "error": step.error,
        "fuel_used": step.fuel_used,
        "duration_ms": step.duration_ms,
    }
    return json.dumps({"result": result}).encode() + b"\n"


def decode_step(data: bytes) -> Step:
    """The step a worker sent; `WireError` for anything not in the wire format."""
    head, newline, body = data.partition(b"\n")
    if not newline or len(head) > HEADER_CAP:
        raise WireError(TaskStatus.BAD_OUTPUT, "the sandbox worker sent an unframed message")
    try:
        header = json.loads(head)
        if "result" in header:
            raw = header["result"]
            return TaskResult(
                TaskStatus(raw["status"]),
                error=str(raw["error"])[:ERROR_CAP],
                fuel_used=_number(raw["fuel_used"], int),
                duration_ms=_number(raw["duration_ms"]),
            )
        fuel, duration = header["fuel_used"], header["duration_ms"]
        return GuestOutcome(body.decode(), _number(fuel, int), _number(duration))
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise WireError(TaskStatus.BAD_OUTPUT, f"the sandbox worker sent garbage: {exc}") from None


def _number(value: Any, kind: type = float) -> Any:
    if type(value) not in (int, float) or value < 0:
        raise ValueError(f"not a measurement: {value!r}"[:80])
    return kind(value)


def _watch_parent(lifeline: Connection) -> None:
    with contextlib.suppress(EOFError, OSError):
        lifeline.recv_bytes()
    os._exit(0)  # the parent is gone: stop at once, mid-task or not


def main(argv: list[str]) -> None:
    """Entry point of `python -I -c BOOT sys_path conn_fd lifeline_fd component` (`BOOT`)."""
    conn_fd, lifeline_fd, component_path = argv
    serve(Connection(int(conn_fd)), Connection(int(lifeline_fd), writable=False), component_path)


WORKER_NICE = 10

BOOT = (
    f"import os; os.nice({WORKER_NICE}); "
    "import json, sys; sys.path[:] = json.loads(sys.argv[1]); "
    "from sandbox.worker import main; main(sys.argv[2:])"
)
"""The worker's command line: a lower CPU priority first (so even its start-up, imports and the
runner's deserialization yield to the server), isolated mode (no current directory, no user
site), then exactly the parent's `sys.path`, so a stray `json.py` where the user stands is never
imported."""


def serve(conn: Connection, lifeline: Connection, component_path: str) -> None:
    """The worker's main loop: load the runner, say READY, serve requests until EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(lifeline,), name="lifeline", daemon=True).start()
    try:
        engine = Engine(component_path)
    except Exception as exc:  # reported to the parent, which raises it
        conn.send_bytes(f"failed: {type(exc).__name__}: {exc}".encode()[:HEADER_CAP])
        os._exit(1)
    conn.send_bytes(READY)
    host = PipeHost(conn)  # the guest's model calls go to the parent, which owns the gateway
    try:
        while True:
            request = RunRequest.from_wire(conn.recv_bytes())
            set_correlation_id(request.correlation_id)  # for any log line of this request
            cap = request.limits.max_output_bytes
            for step in engine.execute(request, host):
                conn.send_bytes(encode_step(step, cap))
    except (EOFError, OSError):
        pass  # the pool closed this worker (or went away)
    # Skip interpreter shutdown: the epoch ticker and Wasmtime's threads need no goodbye.
    os._exit(0)
