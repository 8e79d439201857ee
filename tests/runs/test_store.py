"""RunStore against real SQLite and PostgreSQL databases, time driven by hand: leases,
retries, at-most-once result writes, cancel, idempotency."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from registry import LocalBlobStore, Registry
from registry.db import make_engine
from runs.errors import IdempotencyConflict, QuotaExceeded, RunNotFound
from runs.schemas import NewRun, Outcome
from runs.settings import RunSettings
from runs.store import RunStore
from tests.registry.databases import BACKENDS, pg_server


class Clock:
    def __init__(self) -> None:
        self.moment = datetime(2026, 1, 1, 12, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=BACKENDS)
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    """A new registry database on SQLite, and on PostgreSQL when a test server is given."""
    if request.param == "sqlite":
        yield Registry.open(tmp_path)
        return
    server = pg_server()
    url = server.create()
    registry = Registry(make_engine(url), LocalBlobStore(tmp_path / "blobs"))
    yield registry
    registry.close()
    server.drop(url)


def make_store(registry: Registry, clock: Clock, **settings: object) -> RunStore:
    return RunStore(registry.engine, RunSettings(**settings), now=clock)  # type: ignore[arg-type]


def account(registry: Registry, name: str = "acme") -> int:
    publisher, _ = registry.register_publisher(name, name, None)
    return publisher.id


def new(text: str = "hi", key: str | None = None) -> NewRun:
    return NewRun("documentaliste", "documentaliste", "1.0.0", {"text": text}, 5.0, key)


def test_an_expired_lease_requeues_then_fails_after_max_attempts(
    registry: Registry, clock: Clock
) -> None:
    store = make_store(registry, clock, lease_s=10, max_attempts=2)
    run, _ = store.create(account(registry), new())
    first = store.claim(run.id, "worker-a")
    assert first is not None and first.attempt == 1
    assert store.claim(run.id, "worker-b") is None  # running: nobody else gets it
    clock.advance(9)
    assert store.expire_leases() == []
    assert store.heartbeat(first) == "ok"  # renewed for 10 s more
    clock.advance(11)
    assert store.expire_leases() == [run.id]
    assert store.get(run.id).status == "queued"
    # The lost worker comes back with a result: too late, nothing is written.
    assert store.finish(first, Outcome("succeeded", result={"late": True})) is False
    assert store.heartbeat(first) == "lost"

    second = store.claim(run.id, "worker-b")
    assert second is not None and second.attempt == 2
    clock.advance(11)
    assert store.expire_leases() == []
    final = store.get(run.id)
    assert (final.status, final.error.code if final.error else None) == ("failed", "worker_lost")
    assert "2 attempts" in final.error.message if final.error else False
    kinds = [e.kind for e in store.events(run.id)]
    assert kinds == ["queued", "running", "requeued", "running", "failed"]


def test_an_outcome_is_written_once(registry: Registry, clock: Clock) -> None:
    store = make_store(registry, clock)
    run, _ = store.create(account(registry), new())
    claim = store.claim(run.id, "w")
    assert claim is not None
    assert store.finish(claim, Outcome("succeeded", result={"n": 1}, version="1.0.0")) is True
    assert store.finish(claim, Outcome("failed")) is False  # a second delivery
    done = store.get(run.id)
    assert (done.status, done.result, done.version) == ("succeeded", {"n": 1}, "1.0.0")
    assert store.cancel(run.id).status == "succeeded"  # final states never change


def test_ending_a_run_and_claiming_the_next_is_one_write(
    registry: Registry, clock: Clock
) -> None:
    store = make_store(registry, clock)
    owner = account(registry)
    first, _ = store.create(owner, new("a"))
    second, _ = store.create(owner, new("b"))
    cancelled, _ = store.create(owner, new("c"))
    claim = store.claim(first.id, "slot-1")
    assert claim is not None
    ended, following = store.settle_and_claim(claim, Outcome("succeeded", result={"n": 1}),
                                              second.id)
    assert ended is not None and (ended.status, ended.result) == ("succeeded", {"n": 1})
    assert ended == store.get(first.id)  # what the waiter is handed is what is stored
    assert following is not None and (following.run_id, following.attempt) == (second.id, 1)
    assert following.input == {"text": "b"} and store.get(second.id).status == "running"
    # A stale outcome writes nothing and still claims; a run no longer queued is not claimed.
    store.cancel(cancelled.id, owner)
    stale, none = store.settle_and_claim(claim, Outcome("failed"), cancelled.id)
    assert (stale, none) == (None, None)
    assert store.get(first.id).status == "succeeded"
    assert store.get(cancelled.id).status == "cancelled"
    assert [e.kind for e in store.events(second.id)] == ["queued", "running"]


def test_cancel_queued_at_once_and_running_by_request(registry: Registry, clock: Clock) -> None:
    store = make_store(registry, clock)
    owner = account(registry)
    queued, _ = store.create(owner, new("a"))
    assert store.cancel(queued.id, owner).status == "cancelled"
    assert store.claim(queued.id, "w") is None
    running, _ = store.create(owner, new("b"))
    claim = store.claim(running.id, "w")
    assert claim is not None
    asked = store.cancel(running.id, owner)
    assert (asked.status, asked.cancel_requested) == ("running", True)
    assert store.heartbeat(claim) == "cancel"
    # Its worker died before acting on it: the expiry ends it cancelled, not requeued.
    clock.advance(store.settings.lease_s + 1)
    assert store.expire_leases() == []
    assert store.get(running.id).status == "cancelled"


def test_a_run_is_visible_to_its_account_only(registry: Registry, clock: Clock) -> None:
    store = make_store(registry, clock)
    alice, bob = account(registry, "alice"), account(registry, "bob")
    run, _ = store.create(alice, new())
    assert store.get(run.id, alice).id == run.id
    for call in (store.get, store.cancel, lambda i, o: store.events(i, publisher_id=o)):
        with pytest.raises(RunNotFound):
            call(run.id, bob)
    assert store.list_runs(bob).total == 0


def test_idempotency_keys_are_per_account(registry: Registry, clock: Clock) -> None:
    store = make_store(registry, clock)
    alice, bob = account(registry, "alice"), account(registry, "bob")
    first, created = store.create(alice, new(key="k1"))
    again, created_again = store.create(alice, new(key="k1"))
    assert (created, created_again, again.id) == (True, False, first.id)
    with pytest.raises(IdempotencyConflict) as refused:
        store.create(alice, new("other", key="k1"))
    assert refused.value.run_id == first.id
    theirs, created_theirs = store.create(bob, new(key="k1"))
    assert created_theirs and theirs.id != first.id


def test_the_hourly_quota_says_when_to_come_back(registry: Registry, clock: Clock) -> None:
    store = make_store(registry, clock, max_per_hour=2, max_concurrent=0)
    owner = account(registry)
    store.create(owner, new("a"))
    clock.advance(600)
    store.create(owner, new("b"))
    with pytest.raises(QuotaExceeded) as refused:
        store.create(owner, new("c"))
    assert refused.value.kind == "hourly"
    assert refused.value.retry_after == pytest.approx(3000)
    clock.advance(3001)
    assert store.create(owner, new("c"))[1] is True


def test_everything_running_is_given_back_when_the_server_is_known_dead(
    registry: Registry, clock: Clock
) -> None:
    store = make_store(registry, clock)
    run, _ = store.create(account(registry), new())
    assert store.claim(run.id, "dead-server") is not None
    assert store.expire_leases() == []  # the lease is still valid...
    assert store.expire_leases(everything=True) == [run.id]  # ...but its holder is gone
    assert store.queued() == [run.id]


def test_non_finite_input_is_refused(registry: Registry, clock: Clock) -> None:
    from core.errors import AgentInputError

    store = make_store(registry, clock)
    with pytest.raises(AgentInputError, match="finite"):
        store.create(account(registry), NewRun("a", "a", None, {"x": float("nan")}, 1.0))


def test_submissions_created_together_are_each_answered_as_if_alone(
    registry: Registry, clock: Clock
) -> None:
    """One transaction for a batch of submissions (the engine's process under load): each gets
    `create`'s answer, refusals stay its own, and each run and audit event carries the
    correlation id of the request that made it."""
    from sqlmodel import Session, select

    from core.errors import AgentInputError
    from registry.models import AuditEvent
    from runs.store import Submission

    store = make_store(registry, clock, max_concurrent=2, max_per_hour=0)
    alice, bob = account(registry, "alice"), account(registry, "bob")
    earlier, _ = store.create(alice, new("earlier", key="used"))
    answers = store.create_many([
        Submission(bob, new("one", key="b1"), "bob", "req-1"),
        Submission(alice, new("changed", key="used"), "alice", "req-2"),  # key reused, new input
        Submission(bob, new("two"), "bob", "req-3"),
        Submission(bob, new("three"), "bob", "req-4"),  # bob's third active run: over quota
        Submission(bob, new("one", key="b1"), "bob", "req-5"),  # replays the batch's first
        Submission(alice, NewRun("a", "a", None, {"x": float("inf")}, 1.0), "alice", "req-6"),
        Submission(alice, new("earlier", key="used"), "alice", "req-7"),  # replays an earlier
    ])
    one, conflict, two, over, replay, bad, replay_earlier = answers
    assert isinstance(one, tuple) and one[1] is True
    assert isinstance(conflict, IdempotencyConflict) and conflict.run_id == earlier.id
    assert isinstance(two, tuple) and two[1] is True
    assert isinstance(over, QuotaExceeded) and over.kind == "concurrent"
    assert replay == (one[0], False)
    assert isinstance(bad, AgentInputError)
    assert isinstance(replay_earlier, tuple) and replay_earlier[0].id == earlier.id
    assert store.list_runs(bob).total == 2 and store.list_runs(alice).total == 1
    with Session(registry.engine) as session:
        rows = session.exec(select(AuditEvent).where(AuditEvent.action == "run.submit")).all()
    by_request = {row.correlation_id: (row.object_id, row.outcome) for row in rows}
    assert by_request["req-1"] == (one[0].id, "ok")
    assert by_request["req-3"] == (two[0].id, "ok")
    assert by_request["req-2"][1].startswith("refused:")
    assert by_request["req-4"][1].startswith("refused:")
    assert {"req-5", "req-6", "req-7"}.isdisjoint(by_request)  # replays and bad input: no write


def test_a_submission_that_breaks_the_batch_fails_alone(registry: Registry, clock: Clock) -> None:
    """A failure that is no refusal (here an account that does not exist: a foreign key)
    rolls the batch back; each submission is then created alone, and only that one fails."""
    from sqlalchemy.exc import IntegrityError

    from runs.store import Submission

    store = make_store(registry, clock)
    owner = account(registry)
    first, broken, last = store.create_many([
        Submission(owner, new("a"), "acme", "req-a"),
        Submission(10_000, new("b"), "ghost", "req-b"),
        Submission(owner, new("c"), "acme", "req-c"),
    ])
    assert isinstance(broken, IntegrityError)
    assert isinstance(first, tuple) and isinstance(last, tuple)
    assert sorted(run.input["text"] for run in store.list_runs(owner).items) == ["a", "c"]
    assert store.get(first[0].id).status == "queued"
