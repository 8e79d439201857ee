"""The embedded engine in a process of its own.

`ProcessEngine` is a `RunEngine` that runs a `LocalEngine` (its slots, its worker processes, its
sweeper) in a child process of the API server. Why: the API process is bound to one core by the
GIL, and the engine's transactions (claim, finish) and slot threads used to compete with the
requests for it; in a child they run beside the requests, on another core. Nothing changes in
what a run does: the child executes runs exactly as an in-process `LocalEngine` does (see its
invariants), against the same database.

The child is a fresh interpreter started like a run worker (`sandbox.pool.WorkerProcess`: fork +
exec, isolated mode, this process's `sys.path` and environment, a lifeline pipe that ends it
when this process goes away, however that happens; its own workers then end with it). The
database's URL reaches it over the pipe, never on its command line.

Protocol, pickled tuples over one duplex pipe:
- parent -> child: `("start", EngineSpec)` once, then `("create", n, publisher_id, NewRun,
  actor, correlation_id)`, `("submit", run_id)`, `("cancel", run_id)`,
  `("ask", n, "pids" | "running")` and `("close",)`;
- child -> parent: `("ready",)` or `("failed", reason)` once, then `("created", n, run_json,
  new)` or `("refused", n, exception)`, `("change", run_id)`, `("start", run_id)`,
  `("final", run_json)` (the run as written, `RunPublic` JSON) and `("answer", n, value)`.

Submissions are created in the child too (`create`): the run's transaction then runs beside
the engine's, and the API process, whose threads would hold the database's write lock while
they wait for the GIL, writes nothing on a run's way. A created run is executed at once; its
`created` message is sent before the child's slots are told of it, and the parent binds the
submitter's subscription on reading it, so its end is not missed. (The child's sweep could take
the committed run in between, once a second at most: a waiter then learns of the end by reading
the run again after its one-second wait.) The submissions waiting in the pipe when the child
reads it are created together, in one transaction (`RunStore.create_many`), each answered as
if alone. A submission's input is checked before it is pickled
(`runs.schemas.stored_json`): pickle and JSON give up on values nested a few hundred deep.

Invariants:
- Every state change the child's engine reports reaches this process's listeners in the order
  the child made them (one pipe, one reader thread).
- A child that dies (killed, crashed) is started again after `RESTART_S`; with `orphans` (the
  embedded database has no other user) the new one gives back at once the runs the dead one
  left `running`, otherwise their leases expire. Runs submitted meanwhile wait in the store as
  `queued`; the new child's sweep picks them up.
- `close()` asks the child to close its engine (runs in flight go back to the store, workers are
  reaped), waits for it to exit (`CLOSE_S`), and kills it if it has not.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import logging
import pickle
import socket
import struct
import termios
import threading
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler
from typing import Any

from core.context import correlation_id
from runs.errors import EngineUnavailable
from runs.schemas import NewRun, RunPublic
from runs.settings import RunSettings
from runs.slots import FinalListener
from runs.worker import WorkerConfig
from sandbox.pool import WorkerProcess

log = logging.getLogger("agentfactory.runs")

BATCH = 64
"""The most messages the child takes off the pipe at once; the submissions among them are
created in one transaction (a commit per submission was most of the child's write work)."""

BOOT = (
    "import json, sys; sys.path[:] = json.loads(sys.argv[1]); "
    "from runs.engine_process import main; main(sys.argv[2:])"
)
START_TIMEOUT_S = 120.0
RESTART_S = 1.0
RESTART_MAX_S = 30.0
CLOSE_S = 40.0
CREATE_TIMEOUT_S = 60.0
SEND_SLACK = 4096
"""What the kernel counts for a message beyond its bytes, generously: its frame and the
bookkeeping of its buffers (about 1.3 KiB for a small message, 4% of a large one, measured).
`create` sends from the event loop only a message that fits with an eighth more and this."""
ASK_TIMEOUT_S = 10.0

Listener = Callable[[str], None]


@dataclass(frozen=True)
class EngineSpec:
    """What the child builds its engine from."""

    database_url: str
    settings: RunSettings
    worker: WorkerConfig
    orphans: bool
    log_level: str = "WARNING"
    """The child logs like its parent: this is the parent's root level when it was made."""


class ProcessEngine:
    """A `LocalEngine` in a child process (see the module docstring)."""

    def __init__(
        self,
        spec: EngineSpec,
        *,
        on_change: Listener | None = None,
        on_start: Listener | None = None,
        on_final: FinalListener | None = None,
    ) -> None:
        self.spec = spec
        self.on_change = on_change or (lambda run_id: None)
        self.on_start = on_start or self.on_change
        self.on_final = on_final
        self._child: WorkerProcess | None = None
        self._send_lock = threading.Lock()
        self._state = threading.Lock()
        self._stop = threading.Event()
        self._asked: dict[int, Future[Any]] = {}
        self._creating: dict[int, tuple[Future[tuple[RunPublic, bool]], Listener]] = {}
        self._numbers = itertools.count(1)
        self._reader: threading.Thread | None = None

    # ---------------------------------------------------------------------------- interface

    def start(self) -> None:
        if self._reader is not None:
            return
        self._spawn()
        self._reader = threading.Thread(target=self._follow, name="run-engine-process",
                                        daemon=True)
        self._reader.start()

    async def create(
        self, publisher_id: int, new: NewRun, actor: str | None, bound: Listener
    ) -> tuple[RunPublic, bool] | None:
        """`RunStore.create` in the child, which then executes the run; None if the child is
        down (the caller creates the run: the next child sweeps it up). `EngineUnavailable`
        if the child went away before answering: whether the run exists is then unknown.

        Awaited on the API's event loop, which never blocks on it: the submission is sent from
        the loop when the pipe has room for it for sure, else from a thread, and no thread
        waits for the answer."""
        number = next(self._numbers)
        answer: Future[tuple[RunPublic, bool]] = Future()
        # Running: a waiter that gives up cannot cancel it under the reader, which may set it
        # at any moment (the reader and `_fail_asked` would otherwise meet a cancelled future).
        answer.set_running_or_notify_cancel()
        data = ForkingPickler.dumps(
            ("create", number, publisher_id, new, actor, correlation_id())
        ).tobytes()

        async def send_and_wait() -> tuple[RunPublic, bool] | None:
            sent = self._send_now(data)
            if sent is None:
                sent = await asyncio.to_thread(self._send_data, data)
            if not sent:
                return None
            made: tuple[RunPublic, bool] = await asyncio.wrap_future(answer)
            return made

        self._creating[number] = (answer, bound)
        try:
            return await asyncio.wait_for(send_and_wait(), CREATE_TIMEOUT_S)
        except TimeoutError:
            raise EngineUnavailable(
                f"the run engine did not answer the submission in {CREATE_TIMEOUT_S:.0f} s"
            ) from None
        finally:
            self._creating.pop(number, None)

    def submit(self, run_id: str) -> None:
        # A child that is down (restarting) leaves the run queued: the next one sweeps it up.
        self._send(("submit", run_id))

    def cancel(self, run_id: str) -> None:
        self._send(("cancel", run_id))

    def pids(self) -> list[int]:
        """Process ids of the live run workers (none while the child is down: they end with
        it)."""
        try:
            return list(self._ask("pids"))
        except EngineUnavailable:
            return []

    def running(self) -> dict[str, int]:
        """Run id -> pid of the worker executing it, for the runs executing now (none while
        the child is down)."""
        try:
            return dict(self._ask("running"))
        except EngineUnavailable:
            return {}

    @property
    def pid(self) -> int | None:
        """The engine process's id (None while it is down)."""
        child = self._child
        return None if child is None else child.pid

    def close(self) -> None:
        with self._state:  # no child is started after this
            self._stop.set()
            child = self._child
        if child is not None:
            self._send(("close",))
            try:
                child.process.wait(timeout=CLOSE_S)
            except Exception:  # subprocess.TimeoutExpired: it is killed below
                log.warning("the run engine's process did not close in %.0f s", CLOSE_S)
            child.retire(kill=True)
        if self._reader is not None:
            self._reader.join(timeout=10)
        self._fail_asked("the engine is closed")

    # ------------------------------------------------------------------------------ parent

    def _spawn(self) -> bool:
        """Start a child (False: the engine is closing)."""
        with self._state:
            if self._stop.is_set():
                return False
            child = WorkerProcess(boot=BOOT)
            with self._send_lock:
                child.conn.send(("start", self.spec))
            self._child = child
        return True

    def _send(self, message: tuple[Any, ...]) -> bool:
        """Whether `message` was sent (False: the child is gone; the reader starts another,
        and the store keeps the runs)."""
        return self._send_data(ForkingPickler.dumps(message).tobytes())

    def _send_data(self, data: bytes) -> bool:
        """`_send` for a pickled message."""
        child = self._child
        if child is None:
            return False
        with self._send_lock:
            try:
                child.conn.send_bytes(data)
            except (OSError, ValueError):
                return False
        return True

    def _send_now(self, data: bytes) -> bool | None:
        """`_send_data` if it cannot wait, else None: the pipe's buffer has room for `data`
        (the child may be stuck, not reading it) and no thread is sending. An event loop calls
        this: it must never block."""
        if not self._send_lock.acquire(blocking=False):
            return None
        try:  # the room is measured under the lock: no thread's send can take it meanwhile
            child = self._child
            if child is None:
                return False
            try:
                fits = len(data) + len(data) // 8 + SEND_SLACK <= _send_room(child.conn)
            except OSError:
                return None
            if not fits:
                return None
            child.conn.send_bytes(data)
        except (OSError, ValueError):
            return False
        finally:
            self._send_lock.release()
        return True

    def _ask(self, what: str) -> Any:
        number = next(self._numbers)
        answer: Future[Any] = Future()
        self._asked[number] = answer
        try:
            if not self._send(("ask", number, what)):
                raise EngineUnavailable("the run engine's process is down")
            return answer.result(timeout=ASK_TIMEOUT_S)
        except TimeoutError:
            raise EngineUnavailable(f"the run engine did not answer {what!r}") from None
        finally:
            self._asked.pop(number, None)

    def _fail_asked(self, reason: str) -> None:
        for number in list(self._asked):
            answer = self._asked.pop(number, None)
            if answer is not None and not answer.done():
                with contextlib.suppress(InvalidStateError):  # set meanwhile
                    answer.set_exception(EngineUnavailable(reason))
        for number in list(self._creating):
            entry = self._creating.pop(number, None)
            if entry is not None and not entry[0].done():
                with contextlib.suppress(InvalidStateError):
                    entry[0].set_exception(EngineUnavailable(
                        f"{reason} before it answered a submission; whether the run was "
                        "created is unknown: submit it again with its idempotency key"
                    ))

    def _follow(self) -> None:
        """The reader thread: dispatch what the child says; start it again if it dies (after
        `RESTART_S`, doubled up to `RESTART_MAX_S` while children die before being ready)."""
        delay = RESTART_S
        while not self._stop.is_set():
            child = self._child
            if child is not None:
                self._read(child)
                if self._stop.is_set():
                    return
                log.error("the run engine's process %d %s; starting another in %.0f s",
                          child.pid, child.exit_reason(), delay)
                child.retire(kill=True)
                self._child = None
                self._fail_asked("the run engine's process was lost")
                delay = RESTART_S if child.ready else delay
            if self._stop.wait(delay):
                return
            delay = min(delay * 2, RESTART_MAX_S)  # reset above by a child that got ready
            try:
                if not self._spawn():
                    return
            except OSError as exc:  # no process or descriptor to spare: try again later
                log.error("cannot start the run engine's process (trying again in %.0f s): %s",
                          delay, exc)

    def _read(self, child: WorkerProcess) -> None:
        """Dispatch messages until the pipe ends. A message that cannot be read or handled is
        logged and skipped (the pipe's framing keeps the next one whole): the reader never
        stops while the child lives, or every later submission would wait for its timeout."""
        while True:
            try:
                data = child.conn.recv_bytes()
            except (EOFError, OSError):
                return
            try:
                message = pickle.loads(data)
                self._dispatch(message)
            except Exception:
                log.exception("a message of the run engine's process could not be handled")

    def _dispatch(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "final":
            run = RunPublic.model_validate_json(message[1])
            if self.on_final is not None:
                self.on_final(run)
            else:
                self.on_change(run.id)
        elif kind == "created":
            entry = self._creating.get(message[1])
            if entry is None or entry[0].done():
                return
            # The waiter may give up (its timeout cancels the future) at any moment.
            with contextlib.suppress(InvalidStateError):
                try:
                    run = RunPublic.model_validate_json(message[2])
                    entry[1](run.id)  # before any later message about the run is read
                except Exception as exc:
                    entry[0].set_exception(
                        EngineUnavailable(f"the run's record did not arrive: {exc}")
                    )
                    raise
                entry[0].set_result((run, message[3]))
        elif kind == "refused":
            entry = self._creating.get(message[1])
            if entry is not None and not entry[0].done():
                with contextlib.suppress(InvalidStateError):
                    entry[0].set_exception(message[2])
        elif kind == "start":
            self.on_start(message[1])
        elif kind == "change":
            self.on_change(message[1])
        elif kind == "answer":
            answer = self._asked.get(message[1])
            if answer is not None and not answer.done():
                answer.set_result(message[2])
        elif kind == "failed":
            log.error("the run engine's process could not start: %s", message[1])
        elif kind == "ready":
            child = self._child
            if child is not None:
                child.ready = True
        else:
            log.error("the run engine's process sent %r", kind)


def _send_room(conn: Connection) -> int:
    """How many bytes the kernel takes on `conn`, a Unix socket, without blocking: its send
    buffer's size less what is queued there, unread by the other end."""
    fd = conn.fileno()
    sock = socket.socket(fileno=fd)
    try:
        size = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    finally:
        sock.detach()  # the descriptor stays the connection's
    queued: int = struct.unpack("i", fcntl.ioctl(fd, termios.TIOCOUTQ, bytes(4)))[0]
    return size - queued


# ---------------------------------------------------------------------------------- child


def main(argv: list[str]) -> None:
    """Entry point of `python -I -c BOOT sys_path conn_fd lifeline_fd`."""
    conn_fd, lifeline_fd = argv
    serve(Connection(int(conn_fd)), Connection(int(lifeline_fd), writable=False))


def serve(conn: Connection, lifeline: Connection) -> None:
    import os
    import signal

    from core.logs import configure_logging, log_format_from_env
    from sandbox.worker import _watch_parent

    for stop in (signal.SIGINT, signal.SIGTERM):  # the parent decides when this one stops
        signal.signal(stop, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(lifeline,), name="lifeline", daemon=True).start()
    send_lock = threading.Lock()

    def send(message: tuple[Any, ...]) -> None:
        with send_lock:
            conn.send(message)

    try:
        kind, spec = conn.recv()
        assert kind == "start", kind
        configure_logging(log_format_from_env(), spec.log_level)
        engine = _build(spec, send)
        engine.start()
    except Exception as exc:
        send(("failed", f"{type(exc).__name__}: {exc}"))
        os._exit(1)
    send(("ready",))
    try:
        closing = False
        while not closing:
            messages = [conn.recv()]
            while len(messages) < BATCH and conn.poll():
                messages.append(conn.recv())
            closing = _handle_all(engine, send, messages)
    except (EOFError, OSError):
        pass  # the parent went away
    engine.close()
    os._exit(0)


def _handle_all(
    engine: Any, send: Callable[[tuple[Any, ...]], None], messages: list[tuple[Any, ...]]
) -> bool:
    """Handle `messages` in order, each run of submissions in one transaction; True at
    `close` (the messages after it are dropped)."""
    creating: list[tuple[Any, ...]] = []
    for message in [*messages, ("end",)]:
        if message[0] == "create":
            creating.append(message)
            continue
        if creating:
            _guarded(_create, engine, send, creating)
            creating = []
        if message[0] == "close":
            return True
        if message[0] != "end":
            _guarded(_handle, engine, send, message)
    return False


def _guarded(handler: Callable[..., None], *args: Any) -> None:
    try:
        handler(*args)
    except (EOFError, OSError):
        raise
    except Exception:  # one bad message must not take every run in flight with it
        log.exception("run engine: %s failed", handler.__name__)


def _handle(engine: Any, send: Callable[[tuple[Any, ...]], None], message: tuple[Any, ...]) -> None:
    kind = message[0]
    if kind == "submit":
        engine.submit(message[1])
    elif kind == "cancel":
        engine.cancel(message[1])
    elif kind == "ask":
        value: Any = engine.pids() if message[2] == "pids" else engine.running()
        send(("answer", message[1], value))


def _create(
    engine: Any, send: Callable[[tuple[Any, ...]], None], messages: list[tuple[Any, ...]]
) -> None:
    """Create the runs of `create` messages for the parent, in one transaction, and execute
    them; a refusal goes back as the exception. A run created whose record cannot be sent is
    still executed: the sweep finds it queued."""
    from runs.store import Submission

    submissions = [
        Submission(publisher_id, new, actor, correlation)
        for _, _, publisher_id, new, actor, correlation in messages
    ]
    try:
        answers = engine.store.create_many(submissions)
    except Exception as exc:  # each waiting submitter hears of it at once
        answers = [exc] * len(submissions)
    for message, answer in zip(messages, answers, strict=True):
        number = message[1]
        try:
            if isinstance(answer, Exception):
                raise answer
            run, created = answer
            data = run.model_dump_json()
        except Exception as exc:
            send(("refused", number, _portable(exc)))
            continue
        send(("created", number, data, created))
        if created:
            engine.submit(run.id)


def _portable(exc: Exception) -> Exception:
    """`exc` if it survives pickling (the parent raises it as it is), else its words in an
    `EngineUnavailable`."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return EngineUnavailable(f"{type(exc).__name__}: {exc}")
    return exc


def _build(spec: EngineSpec, send: Callable[[tuple[Any, ...]], None]) -> Any:
    from registry.db import make_engine
    from runs.engine import LocalEngine
    from runs.store import RunStore

    def final(run: RunPublic) -> None:
        # Never raises for the run's content: a slot calling this may hold the next run's claim.
        try:
            data = run.model_dump_json()
        except Exception:
            log.exception("run %s: its final record cannot be sent; waiters will read it", run.id)
            send(("change", run.id))
            return
        send(("final", data))

    store = RunStore(make_engine(spec.database_url), spec.settings)
    return LocalEngine(
        store, spec.worker,
        on_change=lambda run_id: send(("change", run_id)),
        on_start=lambda run_id: send(("start", run_id)),
        on_final=final,
        orphans=spec.orphans,
    )

