"""The embedded engine in its own process (`runs.engine_process`), through the API.

The server's runs are created and executed by a child process; these tests check what a user
of the API would notice if that went wrong: refusals keep their answers, the run engine killed
with -9 is replaced and its runs still finish (exactly once per idempotency key), nothing is
left behind at shutdown, and processes sharing the embedded database queue for its write lock
instead of failing with "database is locked".
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.runs.conftest import BLOCKER, engine_of, register, wait_until


def _engine_pid(client: Any) -> int | None:
    process_engine = engine_of(client).engine  # MachineEngine -> ProcessEngine
    return process_engine.pid if process_engine is not None else None


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1].startswith("Z")  # a zombie: dead, unreaped
    except FileNotFoundError:
        return True


def test_runs_are_created_and_executed_outside_the_api_process(
    make_app: Callable[..., Any],
) -> None:
    client = make_app(workers=1)
    ada = register(client, "ada")
    final = ada.run(BLOCKER, {"echo": "hi"})
    assert final["status"] == "succeeded" and final["result"]["echo"] == "hi"
    engine_pid = _engine_pid(client)
    assert engine_pid is not None and engine_pid != os.getpid()
    worker = final["result"]["pid"]
    with open(f"/proc/{worker}/stat") as stat:
        parent = int(stat.read().split(") ", 1)[1].split()[1])
    assert parent == engine_pid  # the run's worker belongs to the engine's process


def test_refused_submissions_keep_their_answers(
    make_app: Callable[..., Any], tmp_path: Path
) -> None:
    client = make_app(workers=1, max_concurrent=1)
    bob = register(client, "bob")
    gate = tmp_path / "gate"
    first = bob.submit(BLOCKER, {"until": str(gate)}, idempotency_key="k1")
    assert first.status_code == 202, first.text

    over = bob.submit(BLOCKER, {"echo": 1})
    assert over.status_code == 429, over.text
    assert over.json()["code"] == "QuotaLimited" and int(over.headers["Retry-After"]) >= 1

    conflict = bob.submit(BLOCKER, {"echo": "other"}, idempotency_key="k1")
    assert conflict.status_code == 409, conflict.text
    assert conflict.json()["code"] == "IdempotencyConflict"
    assert first.json()["id"] in conflict.json()["detail"]

    replay = bob.submit(BLOCKER, {"until": str(gate)}, idempotency_key="k1")
    assert replay.status_code == 200 and replay.json()["id"] == first.json()["id"]

    gate.write_text("")
    assert bob.wait(first.json()["id"])["status"] == "succeeded"
    listed = client.get("/api/v1/runs", headers=bob.auth).json()
    assert listed["total"] == 1  # the refusals created nothing


def test_non_finite_input_is_refused_by_the_engine_with_400(make_app: Callable[..., Any]) -> None:
    client = make_app(workers=1)
    cleo = register(client, "cleo")
    # JSON has no NaN; Python's json (the client here) writes it anyway, as hostile clients do.
    body = '{"agent": "test-blocker", "input": {"x": NaN}}'
    answer = client.post("/api/v1/runs", content=body, headers={
        **cleo.auth, "Content-Type": "application/json",
    })
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "AgentInputError" and "finite" in answer.json()["detail"]
    assert client.get("/api/v1/runs", headers=cleo.auth).json()["total"] == 0


def test_an_engine_process_killed_mid_run_is_replaced_and_the_run_finishes(
    make_app: Callable[..., Any], tmp_path: Path
) -> None:
    client = make_app(workers=1)
    dora = register(client, "dora")
    gate = tmp_path / "gate"
    run_id = dora.submit(BLOCKER, {"until": str(gate)}).json()["id"]
    worker = wait_until(lambda: engine_of(client).running().get(run_id), what="the run starts")
    engine_pid = _engine_pid(client)
    assert engine_pid is not None
    os.kill(engine_pid, signal.SIGKILL)

    # A new engine process takes over; the orphaned run is given back and runs again.
    wait_until(lambda: _engine_pid(client) not in (None, engine_pid), what="a new engine")
    wait_until(lambda: _gone(worker), what="the dead engine's worker ends with it")
    again = wait_until(lambda: engine_of(client).running().get(run_id),
                       what="the run's second attempt starts")
    assert again != worker
    gate.write_text("")
    final = dora.wait(run_id)
    assert final["status"] == "succeeded" and final["attempt"] == 2
    assert dora.run(BLOCKER, {"echo": "after"})["result"]["echo"] == "after"


def test_submissions_around_an_engine_crash_answer_and_run_exactly_once(
    make_app: Callable[..., Any],
) -> None:
    client = make_app(workers=1)
    eve = register(client, "eve")
    engine_pid = _engine_pid(client)
    assert engine_pid is not None
    os.kill(engine_pid, signal.SIGKILL)
    answers = [eve.submit(BLOCKER, {"echo": n}, idempotency_key=f"key-{n}") for n in range(5)]
    # Refused for now (503: whether it was created is unknown) or accepted; never a 500.
    assert {a.status_code for a in answers} <= {200, 202, 503}, [a.text for a in answers]
    for a in answers:
        if a.status_code == 503:
            assert a.json()["code"] == "EngineUnavailable"
    wait_until(lambda: _engine_pid(client) not in (None, engine_pid), what="a new engine")
    finals = []
    for n in range(5):  # the client's retry: the same key

        def taken(n: int = n) -> Any:
            answer = eve.submit(BLOCKER, {"echo": n}, idempotency_key=f"key-{n}")
            return answer if answer.status_code in (200, 202) else None

        finals.append(eve.wait(wait_until(taken, what="the submission is taken").json()["id"]))
    assert [f["status"] for f in finals] == ["succeeded"] * 5
    assert [f["result"]["echo"] for f in finals] == list(range(5))
    assert client.get("/api/v1/runs", headers=eve.auth).json()["total"] == 5


def test_closing_the_server_leaves_no_engine_or_worker_process(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from marketplace.server.app import create_app
    from marketplace.server.settings import ServerSettings
    from runs.settings import RunSettings

    settings = ServerSettings(home=tmp_path / "home", bootstrap=False, vet_uploads=False,
                              runs=RunSettings(workers=2))
    with TestClient(create_app(settings)) as client:
        fay = register(client, "fay")
        assert fay.run("documentaliste", {"text": "one two"})["status"] == "succeeded"
        workers = wait_until(lambda: len(pids := engine_of(client).pids()) == 2 and pids)
        engine_pid = _engine_pid(client)
    assert engine_pid is not None
    for pid in [engine_pid, *workers]:
        assert _gone(pid), pid


def _write_many(url: str, count: int, tag: str) -> None:
    from sqlalchemy import text

    from registry.db import make_engine, write_connection

    engine = make_engine(url, busy_timeout_ms=0)  # SQLite's busy wait off: only the queue helps
    for n in range(count):
        with write_connection(engine) as conn:
            conn.execute(text("INSERT INTO counts (tag, n) VALUES (:t, :n)"), {"t": tag, "n": n})
            conn.execute(text("UPDATE total SET value = value + 1"))


def test_processes_sharing_the_database_queue_for_its_write_lock(tmp_path: Path) -> None:
    from sqlalchemy import text

    from registry.db import make_engine

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE counts (tag TEXT, n INTEGER)"))
        conn.execute(text("CREATE TABLE total (value INTEGER)"))
        conn.execute(text("INSERT INTO total VALUES (0)"))
    spawn = multiprocessing.get_context("spawn")
    writers = [spawn.Process(target=_write_many, args=(url, 300, f"p{i}")) for i in range(3)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
    # Without the shared queue, a writer meets "database is locked" at once and dies with it.
    assert [w.exitcode for w in writers] == [0, 0, 0]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT value FROM total")).scalar() == 900
        rows = conn.execute(text("SELECT tag, COUNT(*) FROM counts GROUP BY tag")).all()
    per_tag: dict[str, int] = {tag: count for tag, count in rows}
    assert per_tag == {"p0": 300, "p1": 300, "p2": 300}


@pytest.mark.parametrize("hostile", ["missing directory", "not a database"])
def test_an_engine_process_that_cannot_start_says_why_and_closes(
    tmp_path: Path, hostile: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A database the child cannot open: its start fails, the parent logs the child's reason,
    and closing does not wait for a child that never became ready."""
    from runs.engine_process import EngineSpec, ProcessEngine
    from runs.settings import RunSettings
    from runs.worker import WorkerConfig

    bad = tmp_path / hostile.replace(" ", "-")
    if hostile == "not a database":
        bad.write_bytes(os.urandom(4096))
        url = f"sqlite:///{bad}"
    else:
        url = f"sqlite:///{bad}/x/y.db"
    engine = ProcessEngine(EngineSpec(url, RunSettings(workers=1), WorkerConfig(), False))
    with caplog.at_level("ERROR", logger="agentfactory.runs"):
        engine.start()
        try:
            wait_until(lambda: "could not start" in caplog.text, what="the failure is logged")
        finally:
            engine.close()


def test_a_message_the_parent_cannot_read_is_skipped_not_fatal_to_its_reader() -> None:
    """A frame that does not unpickle (or a message of an unknown kind) is logged and skipped:
    the submission waiting behind it still gets its answer."""
    from concurrent.futures import Future
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from runs.engine_process import EngineSpec, ProcessEngine
    from runs.schemas import RunPublic, RunUsage
    from runs.settings import RunSettings
    from runs.worker import WorkerConfig

    engine = ProcessEngine(EngineSpec("sqlite://", RunSettings(), WorkerConfig(), False))
    run = RunPublic(
        id="r" * 16, status="queued", agent="a", agent_name="a", version="1.0", input={},
        result=None, error=None, created_at=datetime.now(UTC), started_at=None,
        finished_at=None, usage=RunUsage(), timeout_s=1.0, idempotency_key=None, attempt=0,
        cancel_requested=False,
    )
    answer: Future[Any] = Future()
    bound: list[str] = []
    engine._creating[7] = (answer, bound.append)
    ours, theirs = multiprocessing.Pipe()
    theirs.send_bytes(b"\x80\x04not a pickle")
    theirs.send(("no such kind",))
    theirs.send(("created", 7, run.model_dump_json(), True))
    theirs.close()
    engine._read(SimpleNamespace(conn=ours))  # type: ignore[arg-type]  # only .conn is used
    created, new = answer.result(timeout=0)
    assert (created.id, new, bound) == (run.id, True, [run.id])


@pytest.mark.parametrize("body", [
    '{"agent": "test-blocker", "input": {"x": "\\ud800"}}',  # a lone surrogate
    '{"agent": "test-blocker", "input": {"x": ["\\udfff", "ok"]}}',
    '{"agent": "test-blocker", "input": ' + '{"v": ' * 65 + "1" + "}" * 65 + "}",
    '{"agent": "test-blocker", "input": ' + '{"v": [' * 150 + "1" + "]}" * 150 + "}",
    '{"agent": "test-blocker", "input": ' + '{"v": ' * 900 + "1" + "}" * 900 + "}",
])
def test_inputs_the_service_cannot_carry_are_refused_and_harm_nobody(
    make_app: Callable[..., Any], tmp_path: Path, body: str
) -> None:
    """A lone surrogate or nesting past 64 levels: 400 before anything is stored, the engine's
    process unharmed, and another account's run in flight finishes."""
    client = make_app(workers=1)
    mia, noa = register(client, "mia"), register(client, "noa")
    gate = tmp_path / "gate"
    theirs = noa.submit(BLOCKER, {"until": str(gate)}).json()["id"]
    wait_until(lambda: engine_of(client).running().get(theirs), what="noa's run starts")
    engine_pid = _engine_pid(client)
    for _ in range(3):
        answer = client.post("/api/v1/runs", content=body, headers={
            **mia.auth, "Content-Type": "application/json",
        })
        assert answer.status_code in (400, 422), answer.text
        if answer.status_code == 400:
            assert answer.json()["code"] == "AgentInputError", answer.text
    assert client.get("/api/v1/runs", headers=mia.auth).json()["total"] == 0
    assert _engine_pid(client) == engine_pid
    gate.write_text("")
    final = noa.wait(theirs)
    assert final["status"] == "succeeded" and final["attempt"] == 1


@pytest.mark.parametrize("task", [{"bad": "surrogate"}, {"deep": 70}, {"deep": 400}])
def test_a_result_the_service_cannot_carry_fails_its_run_and_the_queue_goes_on(
    make_app: Callable[..., Any], task: dict[str, Any]
) -> None:
    client = make_app(workers=1)
    olga = register(client, "olga")
    ids = [olga.submit(BLOCKER, task).json()["id"] for _ in range(2)]
    ids.append(olga.submit(BLOCKER, {"echo": "next"}).json()["id"])
    finals = [olga.wait(run_id) for run_id in ids]
    assert [(f["status"], (f["error"] or {}).get("code")) for f in finals[:2]] == [
        ("failed", "bad_output")] * 2
    assert finals[2]["status"] == "succeeded" and finals[2]["result"]["echo"] == "next"
    assert _engine_pid(client) is not None


def test_an_engine_process_that_cannot_be_started_again_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Out of processes or descriptors at the moment of a restart: the parent tries again
    later instead of leaving the server without an engine."""
    from registry.db import init_db, make_engine
    from runs import engine_process
    from runs.engine_process import EngineSpec, ProcessEngine
    from runs.settings import RunSettings
    from runs.worker import WorkerConfig

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    init_db(make_engine(url))
    monkeypatch.setattr(engine_process, "RESTART_S", 0.05)
    engine = ProcessEngine(EngineSpec(url, RunSettings(workers=1), WorkerConfig(), False))
    engine.start()
    try:
        first = wait_until(lambda: engine.pid, what="the engine's process")
        real, failures = engine_process.WorkerProcess, [0]  # type: ignore[attr-defined]

        def flaky(*args: Any, **kwargs: Any) -> Any:
            if failures[0] < 2:
                failures[0] += 1
                raise OSError(24, "Too many open files")
            return real(*args, **kwargs)

        monkeypatch.setattr(engine_process, "WorkerProcess", flaky)
        os.kill(first, signal.SIGKILL)
        second = wait_until(lambda: engine.pid not in (None, first) and engine.pid,
                            what="a new engine's process")
        assert failures[0] == 2
        assert wait_until(lambda: engine.pids(), what="its worker")  # it answers
        assert second != first
    finally:
        engine.close()


def test_a_write_gives_up_on_a_lock_another_process_keeps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process that holds the database's write lock and stalls (a suspended command):
    a write waits the bounded time, then fails with "database is locked", store unchanged."""
    import fcntl

    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from registry import db

    monkeypatch.setattr(db, "WRITE_QUEUE_TIMEOUT_S", 0.3)
    path = tmp_path / "shared.db"
    engine = db.make_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    # An open file of its own: to flock, another holder, as another process would be.
    holder = os.open(f"{path}.write-lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        with pytest.raises(OperationalError, match="database is locked"), \
                db.write_connection(engine) as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
    finally:
        fcntl.flock(holder, fcntl.LOCK_UN)
        os.close(holder)
    with db.write_connection(engine) as conn:  # released: the next write goes through
        conn.execute(text("INSERT INTO t VALUES (2)"))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT n FROM t")).scalars().all() == [2]


def test_engines_that_wrote_are_freed_with_their_connections(tmp_path: Path) -> None:
    import gc
    import weakref

    from sqlalchemy import text

    from registry import db

    refs = []
    for n in range(5):
        engine = db.make_engine(f"sqlite:///{tmp_path / f'{n}.db'}")
        with db.write_connection(engine) as conn:
            conn.execute(text("CREATE TABLE t (n INTEGER)"))
        engine.dispose()
        refs.append(weakref.ref(engine))
        del engine, conn
    gc.collect()
    assert [ref() for ref in refs] == [None] * 5


def test_the_connection_returned_last_is_handed_out_next(tmp_path: Path) -> None:
    """SQLite empties a connection's page cache when another connection changed the database:
    the pool hands out the connection whose cache is warmest, the one returned last."""
    from registry import db

    engine = db.make_engine(f"sqlite:///{tmp_path / 'pool.db'}")
    first, second = engine.raw_connection(), engine.raw_connection()
    warm = first.dbapi_connection
    second.close()  # back to the pool first
    first.close()  # then this one: the next transaction gets it
    with db.write_connection(engine) as conn:
        assert conn.connection.dbapi_connection is warm
    engine.dispose()


def test_the_engine_process_answers_a_batch_of_messages_in_order(tmp_path: Path) -> None:
    """What the child does with the messages it finds waiting in its pipe: the submissions are
    created together, each answered (created or refused) in order, other messages keep their
    place, and nothing after `close` is acted on."""
    from types import SimpleNamespace

    from registry import Registry
    from runs.engine_process import _handle_all
    from runs.errors import QuotaExceeded
    from runs.schemas import NewRun, RunPublic
    from runs.settings import RunSettings
    from runs.store import RunStore

    registry = Registry.open(tmp_path)
    owner, _ = registry.register_publisher("ada", "ada", None)
    store = RunStore(registry.engine, RunSettings(max_concurrent=2, max_per_hour=0))
    done: list[tuple[str, str]] = []
    engine = SimpleNamespace(
        store=store,
        submit=lambda run_id: done.append(("submit", run_id)),
        cancel=lambda run_id: done.append(("cancel", run_id)),
    )
    sent: list[tuple[Any, ...]] = []

    def create(n: int) -> tuple[Any, ...]:
        new = NewRun("documentaliste", "documentaliste", "1.0.0", {"n": n}, 5.0, None)
        return ("create", n, owner.id, new, "ada", f"req-{n}")

    closing = _handle_all(engine, sent.append, [
        create(1), create(2), create(3), ("cancel", "elsewhere"), create(4), ("close",),
        create(5),
    ])
    assert closing is True
    assert [(message[0], message[1]) for message in sent] == [
        ("created", 1), ("created", 2), ("refused", 3), ("refused", 4)]
    assert all(isinstance(message[2], QuotaExceeded) for message in sent[2:])
    ids = [RunPublic.model_validate_json(message[2]).id for message in sent[:2]]
    assert done == [("submit", ids[0]), ("submit", ids[1]), ("cancel", "elsewhere")]
    assert sorted(run.input["n"] for run in store.list_runs(owner.id).items) == [1, 2]
    assert [store.get(run_id).status for run_id in ids] == ["queued", "queued"]
    registry.close()


def test_concurrent_submissions_keep_their_own_request_ids(make_app: Callable[..., Any]) -> None:
    """Submissions from many threads at once (created by the engine's process in batches):
    each run and its audit events carry the id of the request that submitted it."""
    from concurrent.futures import ThreadPoolExecutor

    client = make_app(workers=2)
    ivy = register(client, "ivy")

    def submit(n: int) -> tuple[str, str]:
        answer = client.post(
            "/api/v1/runs", params={"wait": 30},
            json={"agent": BLOCKER, "input": {"echo": n}},
            headers={**ivy.auth, "X-Request-ID": f"ivy-{n}"},
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["result"]["echo"] == n
        return answer.json()["id"], answer.headers["X-Request-ID"]

    with ThreadPoolExecutor(16) as pool:
        submitted = list(pool.map(submit, range(48)))
    assert [request for _, request in submitted] == [f"ivy-{n}" for n in range(48)]

    def correlations(action: str) -> dict[str, str]:
        page = client.get(
            "/api/v1/audit", params={"action": action, "per_page": 200}, headers=ivy.auth
        ).json()
        return {event["object_id"]: event["correlation_id"] for event in page["items"]}

    submits, finishes = correlations("run.submit"), correlations("run.finish")
    assert len(submits) == len(finishes) == 48
    for run_id, request in submitted:
        assert submits[run_id] == request and finishes[run_id] == request


def test_a_stopped_engine_process_never_stalls_the_event_loop(
    make_app: Callable[..., Any],
) -> None:
    """The engine's process stops reading (SIGSTOP: as if stuck on a lock) while submissions
    pile up, big enough to fill its pipe: the API still answers other requests at once, and
    once the process goes on every submission gets its run, exactly one each."""
    from concurrent.futures import ThreadPoolExecutor

    client = make_app(workers=1)
    uma = register(client, "uma")
    assert uma.run(BLOCKER, {"echo": "warm"})["status"] == "succeeded"
    engine_pid = _engine_pid(client)
    assert engine_pid is not None
    filler = "x" * 150_000  # under the API's JSON limit; a dozen of them fill the pipe
    os.kill(engine_pid, signal.SIGSTOP)
    with ThreadPoolExecutor(12) as pool:
        try:
            submitted = [
                pool.submit(uma.submit, BLOCKER, {"echo": n, "pad": filler},
                            idempotency_key=f"k{n}")
                for n in range(12)
            ]
            process_engine = engine_of(client).engine
            wait_until(lambda: len(process_engine._creating) == 12, timeout=30,
                       what="all 12 submissions sent")
            with ThreadPoolExecutor(1) as probe:
                health = probe.submit(client.get, "/healthz").result(timeout=20)
                assert health.status_code == 200
                listed = probe.submit(
                    client.get, "/api/v1/runs", headers=uma.auth
                ).result(timeout=20)
                assert listed.status_code == 200
        finally:
            os.kill(engine_pid, signal.SIGCONT)  # before leaving the pool, which waits
        answers = [f.result(timeout=60) for f in submitted]
    assert [a.status_code for a in answers] == [202] * 12, [a.text[:200] for a in answers]
    finals = [uma.wait(a.json()["id"]) for a in answers]
    assert sorted(f["result"]["echo"] for f in finals) == list(range(12))
    assert client.get("/api/v1/runs", headers=uma.auth).json()["total"] == 13


def test_the_event_loop_never_waits_to_send_a_submission() -> None:
    """`_send_now` (called on the event loop) sends only what the socket takes at once: not
    when a thread is sending, not when the buffer lacks room (a child that stopped reading)."""
    import threading
    import time
    from types import SimpleNamespace

    from runs.engine_process import EngineSpec, ProcessEngine
    from runs.settings import RunSettings
    from runs.worker import WorkerConfig

    engine = ProcessEngine(EngineSpec("sqlite://", RunSettings(), WorkerConfig(), False))
    ours, theirs = multiprocessing.Pipe(duplex=True)
    engine._child = SimpleNamespace(conn=ours)  # type: ignore[assignment]  # only .conn is used
    assert engine._send_now(b"small") is True
    assert theirs.recv_bytes() == b"small"
    holding = threading.Event()
    release = threading.Event()

    def sending_thread() -> None:
        with engine._send_lock:
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=sending_thread)
    thread.start()
    holding.wait(10)
    started = time.monotonic()
    assert engine._send_now(b"small") is None  # a thread holds the lock: not waited for
    release.set()
    thread.join()
    sent = {30_000: 0, 10: 0}
    for size in sent:  # nobody reads: big messages until one is refused, then small ones
        while engine._send_now(b"x" * size):
            sent[size] += 1
            assert sent[size] < 100_000 and time.monotonic() - started < 10
    assert sent[30_000] >= 1 and sent[10] >= 1
    for size, count in sent.items():  # every message sent arrives whole, in order
        assert [theirs.recv_bytes() for _ in range(count)] == [b"x" * size] * count
    assert not theirs.poll()


def test_a_submitter_who_gives_up_leaves_its_answer_settable() -> None:
    """A request cancelled (or timed out) while the engine creates its run must not cancel the
    future the reader thread sets: setting a cancelled one raises, and `_fail_asked` raising
    when the child dies would end the reader, and with it every restart."""
    import asyncio
    from types import SimpleNamespace

    from runs.engine_process import EngineSpec, ProcessEngine
    from runs.errors import EngineUnavailable
    from runs.schemas import NewRun
    from runs.settings import RunSettings
    from runs.worker import WorkerConfig

    engine = ProcessEngine(EngineSpec("sqlite://", RunSettings(), WorkerConfig(), False))
    ours, theirs = multiprocessing.Pipe(duplex=True)
    engine._child = SimpleNamespace(conn=ours)  # type: ignore[assignment]  # only .conn is used
    new = NewRun("a", "a", "1.0", {}, 1.0, None)

    async def scenario() -> Any:
        task = asyncio.create_task(engine.create(1, new, None, lambda run_id: None))
        while not engine._creating:
            await asyncio.sleep(0.001)
        answer = next(iter(engine._creating.values()))[0]
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return answer

    answer = asyncio.run(scenario())
    assert theirs.recv()[0] == "create"  # it was sent: the child may still answer it
    assert not answer.cancelled()
    answer.set_exception(EngineUnavailable("the run engine's process was lost"))  # no error


def test_only_small_submissions_are_checked_on_the_event_loop(
    make_app: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checking an input walks it: a big one (up to the API's 256 KiB) is checked in a worker
    thread, so another account's requests are not held up behind it."""
    import asyncio

    from runs.service import INLINE_BYTES, RunService

    on_loop: list[bool] = []
    checked = RunService.new_run

    def recording(self: RunService, *args: Any) -> Any:
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:
            on_loop.append(False)
        return checked(self, *args)

    monkeypatch.setattr(RunService, "new_run", recording)
    client = make_app(workers=1)
    zoe = register(client, "zoe")
    for pad in ("", "", "x" * INLINE_BYTES):  # the first one loads the template
        answer = zoe.submit(BLOCKER, {"echo": 1, "pad": pad})
        assert answer.status_code == 202, answer.text
    assert on_loop[1:] == [True, False]
