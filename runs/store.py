"""The run store: every state change of a run, in the registry's database.

States: `queued -> running -> succeeded | failed | timed_out | cancelled`, and `running ->
queued` when a lease expires (the run is delivered again). A final state never changes again.

Invariants (each a single write transaction that locks the run's row first):
- `create` checks the account's quotas and its idempotency key in the same transaction that
  inserts the run, so two concurrent submissions cannot both pass a quota, and the same key
  from the same account always yields the same run (a different agent or input under a used key
  is an `IdempotencyConflict`).
- `claim` moves a run from `queued` to `running` only; it increments `attempt` and hands out a
  lease (`owner`, `lease_expires_at`). Only the holder of the current attempt's lease can
  `heartbeat` it, `finish` it or `release` it: a stale or second delivery of an outcome is a
  no-op that returns False, so results are written at most once.
- `expire_leases` turns every run whose lease has expired (its worker or server died) back to
  `queued`, or ends it `failed` with `worker_lost` once it had `max_attempts` deliveries, or
  `cancelled` if a cancel was asked for meanwhile. No run stays `running` without a live lease.
- `cancel` ends a queued run at once; a running one gets `cancel_requested`, which its engine
  acts on (it kills the run's worker); a final run is left as it is.
- Every state change appends a `RunEvent` (numbered per run from 1) in the same transaction,
  so the event stream and the run's state never disagree. The number is computed in the insert
  itself (one more than the run's last, an index lookup), after the run's row was locked or
  changed, so two transactions never number one run's events alike.
- A run of another account is `RunNotFound`, exactly like a run that does not exist.
- Submission, start, end and cancel each append an audit event (`registry.audit`: its table,
  its limits on `detail`) in the same transaction, with the run's correlation id (that of the
  request that submitted it, stored on the run); a workflow's end appends one `step.finish` per
  step. A refused submission or cancel appends its `refused:` event in a transaction of its own.
- `enqueue(conn, run_id)`, when an engine sets it, is called inside every transaction that
  makes a run `queued` (creation, a lease expired, a worker lost): a distributed engine defers
  its job there, so a queued run and its job are committed together or not at all.

The hot path (create, claim, heartbeat, finish, get) is written in SQLAlchemy Core: a claim is
one `UPDATE ... WHERE status = 'queued' RETURNING`, a heartbeat one conditional `UPDATE`, and
no ORM unit of work is flushed. The conditional updates are also what makes a claim safe
without a prior `SELECT ... FOR UPDATE` on PostgreSQL: a second claimer waits for the first's
row lock, then finds the row no longer `queued`.

Time comes from `now` (injectable), so tests drive lease expiry without waiting.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Literal, TypeVar, cast

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.exc import IntegrityError

from core.context import correlated, correlation_id
from core.errors import AgentFactoryError, AgentInputError
from core.sql import Prepared
from registry import audit
from registry.db import init_db, write_connection
from registry.models import AuditEvent, Publisher, utcnow
from runs.errors import IdempotencyConflict, QuotaExceeded, RunNotFound
from runs.models import Run, RunEvent
from runs.schemas import (
    ACTIVE,
    FINAL,
    Claim,
    NewRun,
    NotStorable,
    Outcome,
    RunErrorInfo,
    RunEventPublic,
    RunPage,
    RunPublic,
    RunUsage,
    stored_json,
)
from runs.settings import RunSettings

Heartbeat = Literal["ok", "cancel", "lost"]
Enqueue = Callable[[Connection, str], None]
Row = Mapping[Any, Any]  # a run's row: Core's RowMapping, or a dict of its columns
HOUR = timedelta(hours=1)
T = TypeVar("T")

# Set by SQLModel's metaclass, unknown to its stubs.
RUN: Table = Run.__table__  # type: ignore[attr-defined]
EVENT: Table = RunEvent.__table__  # type: ignore[attr-defined]
AUDIT: Table = AuditEvent.__table__  # type: ignore[attr-defined]
PUBLISHER: Table = Publisher.__table__  # type: ignore[attr-defined]
_BLANK: dict[str, Any] = {column.name: None for column in RUN.columns}

# The hot path's statements, built once: building a statement (its clauses, its cache key) costs
# several times what SQLite takes to run it. Values come as parameters at execution; a bound name
# never collides with a column's (SQLAlchemy reserves those for VALUES and SET).
_INSERT_RUN = insert(RUN)
_INSERT_NEXT_EVENT = insert(EVENT).values(
    seq=select(func.coalesce(func.max(EVENT.c.seq), 0) + 1)
    .where(EVENT.c.run_id == bindparam("e_run")).scalar_subquery()
)
_BY_ID = select(RUN).where(RUN.c.id == bindparam("r_id"))
_BY_ID_LOCKED = _BY_ID.with_for_update()
_BY_KEY = select(RUN).where(
    RUN.c.publisher_id == bindparam("k_owner"), RUN.c.idempotency_key == bindparam("k_key")
)
_HELD = (
    RUN.c.id == bindparam("h_id"), RUN.c.status == "running",
    RUN.c.attempt == bindparam("h_attempt"), RUN.c.lease_owner == bindparam("h_owner"),
)
_HELD_LOCKED = select(RUN).where(*_HELD).with_for_update()
_RENEW = update(RUN).where(*_HELD).values(lease_expires_at=bindparam("h_expires")).returning(
    RUN.c.cancel_requested
)
_CLAIM = (
    update(RUN).where(RUN.c.id == bindparam("c_id"), RUN.c.status == "queued")
    .values(
        status="running", attempt=RUN.c.attempt + 1, lease_owner=bindparam("c_owner"),
        lease_expires_at=bindparam("c_expires"), started_at=bindparam("c_now"),
    )
    .returning(
        RUN.c.id, RUN.c.publisher_id, RUN.c.attempt, RUN.c.agent, RUN.c.agent_name,
        RUN.c.input_json, RUN.c.timeout_s, RUN.c.correlation_id,
    )
)
_UPDATE_RUN = update(RUN).where(RUN.c.id == bindparam("u_id"))
_ACTIVE_COUNT = select(func.count()).select_from(RUN).where(
    RUN.c.publisher_id == bindparam("q_owner"), RUN.c.status.in_(ACTIVE)
)
_RECENT_COUNT = select(func.count(), func.min(RUN.c.created_at)).where(
    RUN.c.publisher_id == bindparam("q_owner"), RUN.c.created_at > bindparam("q_since")
)
_ACCOUNT_NAME = select(PUBLISHER.c.name).where(PUBLISHER.c.id == bindparam("p_id"))


@dataclass(frozen=True)
class Submission:
    """One submission for `RunStore.create_many`: `create`'s arguments, and the correlation id
    of the request that made it."""

    publisher_id: int
    new: NewRun
    actor: str | None = None
    correlation_id: str | None = None


def new_run_id() -> str:
    """16 URL-safe characters (96 random bits): unguessable, so ids leak nothing."""
    return secrets.token_urlsafe(12)


class RunStore:
    """Runs and their events over `engine` (the registry's). Thread-safe."""

    def __init__(
        self,
        engine: Engine,
        settings: RunSettings | None = None,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        init_db(engine)  # the runs tables come with the registry's migrations
        self.engine = engine
        self.settings = settings or RunSettings()
        self.now = now
        self.enqueue: Enqueue | None = None

    # ----------------------------------------------------------------------------- submitting

    def create(
        self, publisher_id: int, new: NewRun, *, actor: str | None = None
    ) -> tuple[RunPublic, bool]:
        """The new queued run, and True; or, for a used idempotency key, that run and False.
        `actor` is the account's name for the audit trail (read from the database if None)."""
        encoded = input_json(new.input)
        try:
            row, created = self._write(
                lambda conn: self._new_run(conn, publisher_id, new, encoded, actor)
            )
        except AgentFactoryError as exc:  # a quota, a reused idempotency key
            self._refused(exc, publisher_id, new, actor)
            raise
        except IntegrityError:
            # Two submissions with one key raced (PostgreSQL); the winner's run is the answer.
            existing = self._by_key(publisher_id, new.idempotency_key)
            if existing is None:
                raise
            return existing, False
        return _public(row), created

    def create_many(
        self, submissions: Sequence[Submission]
    ) -> list[tuple[RunPublic, bool] | Exception]:
        """`create` for each submission, in order, in one write transaction: what `create`
        would answer it, or raise for it (a refusal is its own; the others are created). Each
        is written under its own correlation id. If the transaction breaks an integrity
        constraint, each submission goes through `create` alone, so one cannot take the others
        with it; any other failure of the database is every submission's answer."""
        answers: list[tuple[RunPublic, bool] | Exception | None] = [None] * len(submissions)
        inputs: dict[int, str] = {}
        for n, submission in enumerate(submissions):
            try:
                inputs[n] = input_json(submission.new.input)
            except AgentInputError as exc:
                answers[n] = exc

        def write(conn: Connection) -> dict[int, tuple[Row, bool] | AgentFactoryError]:
            written: dict[int, tuple[Row, bool] | AgentFactoryError] = {}
            for n, input_json in inputs.items():
                one = submissions[n]
                with correlated(one.correlation_id):
                    try:  # a refusal is raised before the submission writes anything
                        written[n] = self._new_run(
                            conn, one.publisher_id, one.new, input_json, one.actor
                        )
                    except AgentFactoryError as exc:
                        written[n] = exc
            return written

        written: dict[int, tuple[Row, bool] | AgentFactoryError] = {}
        try:
            written = self._write(write) if inputs else {}
        except IntegrityError:  # one submission's doing (an account gone, a key raced on PG)
            for n in inputs:
                one = submissions[n]
                with correlated(one.correlation_id):
                    try:
                        answers[n] = self.create(one.publisher_id, one.new, actor=one.actor)
                    except Exception as exc:
                        answers[n] = exc
        except Exception as exc:  # the database's (locked, gone): as `create` would raise it
            for n in inputs:
                answers[n] = exc
        for n, result in written.items():
            if isinstance(result, AgentFactoryError):
                one = submissions[n]
                with correlated(one.correlation_id):
                    self._refused(result, one.publisher_id, one.new, one.actor)
                answers[n] = result
            else:
                answers[n] = (_public(result[0]), result[1])
        assert all(answer is not None for answer in answers)
        return cast(list[tuple[RunPublic, bool] | Exception], answers)

    def _new_run(
        self, conn: Connection, publisher_id: int, new: NewRun, input_json: str,
        actor: str | None,
    ) -> tuple[Row, bool]:
        """Insert the run `new` (its row, True), or find the one its idempotency key made
        (False); raises a refusal before writing anything."""
        if new.idempotency_key is not None:
            used = _row_by_key(conn, publisher_id, new.idempotency_key)
            if used is not None:
                if (used["agent"], used["input_json"]) != (new.agent, input_json):
                    raise IdempotencyConflict(new.idempotency_key, used["id"])
                return used, False
        now = self.now()  # under the write lock: creation times follow commit order
        self._check_quotas(conn, publisher_id, now)
        values = {
            "id": new_run_id(), "publisher_id": publisher_id, "agent": new.agent,
            "agent_name": new.agent_name, "version": new.version, "input_json": input_json,
            "status": "queued", "timeout_s": new.timeout_s,
            "idempotency_key": new.idempotency_key, "attempt": 0,
            "cancel_requested": False, "correlation_id": correlation_id(), "created_at": now,
        }
        row = {**_BLANK, **values}
        detail = {"agent": new.agent_name, "version": new.version}
        conn.execute(_INSERT_RUN, values)
        _event(conn, row["id"], "queued", detail, now, seq=1)
        who = audit.Actor(actor or _account_name(conn, publisher_id), publisher_id)
        _audit(conn, [_audit_row("run.submit", who, "run", row, detail, now)])
        if self.enqueue is not None:
            self.enqueue(conn, row["id"])
        return row, True

    def _refused(
        self, exc: AgentFactoryError, publisher_id: int, new: NewRun, actor: str | None
    ) -> None:
        audit.record_refusal(
            self.engine, exc, "run.submit", audit.Actor(actor or "", publisher_id), "run",
            "(new)", detail={"agent": new.agent_name},
        )

    def _write(self, job: Callable[[Connection], T]) -> T:
        """`job(conn)` in a write transaction of its own."""
        with write_connection(self.engine) as conn:
            return job(conn)

    def _check_quotas(self, conn: Connection, publisher_id: int, now: datetime) -> None:
        limits = self.settings
        if limits.max_concurrent:
            active = conn.execute(_ACTIVE_COUNT, {"q_owner": publisher_id}).scalar_one()
            if active >= limits.max_concurrent:
                raise QuotaExceeded("concurrent", limits.max_concurrent, 1)
        if limits.max_per_hour:
            recent, oldest = conn.execute(
                _RECENT_COUNT, {"q_owner": publisher_id, "q_since": now - HOUR}
            ).one()
            if recent >= limits.max_per_hour:
                wait = (_aware(oldest) + HOUR - _aware(now)).total_seconds() if oldest else 1
                raise QuotaExceeded("hourly", limits.max_per_hour, max(1.0, wait))

    def _by_key(self, publisher_id: int, key: str | None) -> RunPublic | None:
        if key is None:
            return None
        with self.engine.connect() as conn:
            row = _row_by_key(conn, publisher_id, key)
            return None if row is None else _public(row)

    # ------------------------------------------------------------------------------- reading

    def get(self, run_id: str, publisher_id: int | None = None) -> RunPublic:
        """Run `run_id`; with `publisher_id`, only if it is that account's."""
        with self.engine.connect() as conn:
            return _public(_row(conn, run_id, publisher_id))

    def list_runs(
        self,
        publisher_id: int,
        *,
        status: str | None = None,
        agent: str | None = None,
        page: int = 1,
        per_page: int = 20,
    ) -> RunPage:
        """The account's runs, newest first."""
        where = [RUN.c.publisher_id == publisher_id]
        if status is not None:
            where.append(RUN.c.status == status)
        if agent is not None:
            where.append(RUN.c.agent_name == agent)
        with self.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(RUN).where(*where)).scalar_one()
            rows = conn.execute(
                select(RUN).where(*where)
                .order_by(RUN.c.created_at.desc(), RUN.c.id)
                .offset((page - 1) * per_page).limit(per_page)
            ).mappings().all()
        return RunPage(
            items=[_public(row) for row in rows], total=total, page=page, per_page=per_page
        )

    def events(
        self, run_id: str, after: int = 0, publisher_id: int | None = None
    ) -> list[RunEventPublic]:
        """The run's events numbered above `after`, in order."""
        with self.engine.connect() as conn:
            _row(conn, run_id, publisher_id)
            rows = conn.execute(
                select(EVENT.c.seq, EVENT.c.kind, EVENT.c.data_json, EVENT.c.at)
                .where(EVENT.c.run_id == run_id, EVENT.c.seq > after).order_by(EVENT.c.seq)
            ).all()
        return [
            RunEventPublic(seq=seq, kind=kind, data=json.loads(data), at=at)
            for seq, kind, data, at in rows
        ]

    def queued(self, limit: int = 1000) -> list[str]:
        """Ids of queued runs, oldest first."""
        with self.engine.connect() as conn:
            return list(conn.execute(
                select(RUN.c.id).where(RUN.c.status == "queued")
                .order_by(RUN.c.created_at).limit(limit)
            ).scalars())

    # ------------------------------------------------------------------------------ executing

    def claim(self, run_id: str, owner: str) -> Claim | None:
        """Run `run_id` for `owner`, if it is still queued; None otherwise."""
        now = self.now()
        row = self._write(lambda conn: self._claim(conn, run_id, owner, now))
        return None if row is None else _claim_of(row, owner)

    def _claim(self, conn: Connection, run_id: str, owner: str, now: datetime) -> Row | None:
        params = {
            "c_id": run_id, "c_owner": owner, "c_now": now,
            "c_expires": now + timedelta(seconds=self.settings.lease_s),
        }
        row = conn.execute(_CLAIM, params).mappings().first()
        if row is None:
            return None
        _event(conn, run_id, "running", {"attempt": row["attempt"]}, now)
        detail = {"attempt": row["attempt"], "worker": owner}
        _audit(conn, [_audit_row("run.start", audit.SYSTEM, "run", row, detail, now)])
        return row

    def heartbeat(self, claim: Claim) -> Heartbeat:
        """Renew the claim's lease: "ok", "cancel" (renewed, but a cancel was asked for) or
        "lost" (the lease is no longer this claim's: stop and write nothing)."""
        expires = self.now() + timedelta(seconds=self.settings.lease_s)
        params = {**_held(claim), "h_expires": expires}
        cancel = self._write(lambda conn: conn.execute(_RENEW, params).scalar())
        if cancel is None:
            return "lost"
        return "cancel" if cancel else "ok"

    def finish(self, claim: Claim, outcome: Outcome) -> bool:
        """Record the claim's outcome; False (and nothing written) if the claim is stale."""
        return self.settle(claim, outcome) is not None

    def settle(self, claim: Claim, outcome: Outcome) -> RunPublic | None:
        """`finish`, answering the run as it now is (None, and nothing written, if the claim
        is stale)."""
        def write(conn: Connection) -> dict[str, Any] | None:
            row = conn.execute(_HELD_LOCKED, _held(claim)).mappings().first()
            return None if row is None else _settle(conn, row, outcome, self.now())

        settled = self._write(write)
        return None if settled is None else _public(settled)

    def settle_and_claim(
        self, claim: Claim, outcome: Outcome, run_id: str
    ) -> tuple[RunPublic | None, Claim | None]:
        """`settle(claim, outcome)` and `claim(run_id, claim.owner)` in one transaction (a slot
        that ends a run and has the next one waiting): one commit instead of two."""
        owner = claim.owner

        def write(conn: Connection) -> tuple[dict[str, Any] | None, Row | None]:
            now = self.now()
            row = conn.execute(_HELD_LOCKED, _held(claim)).mappings().first()
            settled = None if row is None else _settle(conn, row, outcome, now)
            return settled, self._claim(conn, run_id, owner, now)

        settled, claimed = self._write(write)
        return (
            None if settled is None else _public(settled),
            None if claimed is None else _claim_of(claimed, owner),
        )

    def release(self, claim: Claim, reason: str) -> str:
        """Give a claimed run back (its worker was lost): queued again, or failed after
        `max_attempts` deliveries. Returns the run's new status ("" if the claim is stale)."""

        def write(conn: Connection) -> str:
            row = conn.execute(_HELD_LOCKED, _held(claim)).mappings().first()
            return "" if row is None else self._requeue(conn, row, reason)

        return self._write(write)

    def expire_leases(self, *, everything: bool = False) -> list[str]:
        """Requeue (or end) every running run whose lease has expired (with `everything`, every
        running run: its server is known dead); the ids of those requeued."""
        now = self.now()
        query = select(RUN).where(RUN.c.status == "running")
        if not everything:
            query = query.where(RUN.c.lease_expires_at < now)
        with write_connection(self.engine) as conn:
            rows = conn.execute(query.with_for_update()).mappings().all()
            requeued = [self._requeue(conn, row, "lease expired") for row in rows]
        return [row["id"] for row, status in zip(rows, requeued, strict=True) if status == "queued"]

    def _requeue(self, conn: Connection, row: Row, reason: str) -> str:
        now = self.now()
        if row["cancel_requested"]:
            outcome = Outcome.failure("cancelled", "cancelled", "cancelled")
        elif row["attempt"] >= self.settings.max_attempts:
            message = f"worker lost ({reason}) on each of {row['attempt']} attempts"
            outcome = Outcome.failure("failed", "worker_lost", message)
        else:
            conn.execute(
                update(RUN).where(RUN.c.id == row["id"])
                .values(status="queued", lease_owner=None, lease_expires_at=None)
            )
            _event(conn, row["id"], "requeued", {"attempt": row["attempt"], "reason": reason}, now)
            if self.enqueue is not None:
                self.enqueue(conn, row["id"])
            return "queued"
        return str(_settle(conn, row, outcome, now)["status"])

    # ----------------------------------------------------------------------------- cancelling

    def cancel(self, run_id: str, publisher_id: int | None = None) -> RunPublic:
        """Cancel `run_id` (see the module docstring); the run as it is afterwards."""
        who = audit.SYSTEM if publisher_id is None else audit.Actor("", publisher_id)
        try:
            return self._cancel(run_id, publisher_id, who)
        except AgentFactoryError as exc:
            audit.record_refusal(self.engine, exc, "run.cancel", who, "run", run_id)
            raise

    def _cancel(self, run_id: str, publisher_id: int | None, who: audit.Actor) -> RunPublic:
        with write_connection(self.engine) as conn:
            row = _row(conn, run_id, publisher_id, lock=True)
            now = self.now()
            if who.publisher_id is not None and not who.name:
                who = audit.Actor(_account_name(conn, who.publisher_id), who.publisher_id)
            detail = {"status": row["status"]}
            _audit(conn, [_audit_row("run.cancel", who, "run", row, detail, now, of_request=True)])
            if row["status"] == "queued":
                cancelled = Outcome.failure("cancelled", "cancelled", "cancelled")
                row = _settle(conn, row, cancelled, now)
            elif row["status"] == "running" and not row["cancel_requested"]:
                conn.execute(update(RUN).where(RUN.c.id == run_id).values(cancel_requested=True))
                _event(conn, run_id, "cancel_requested", {}, now)
                row = {**row, "cancel_requested": True}
            return _public(row)


# --------------------------------------------------------------------------------- helpers


def input_json(task: dict[str, Any]) -> str:
    """A run's input as the store keeps it; `AgentInputError` if it cannot be kept."""
    try:
        return stored_json(task, "input")
    except NotStorable as exc:
        raise AgentInputError(str(exc)) from None


def _held(claim: Claim) -> dict[str, Any]:
    """The parameters of `_HELD`: the conditions under which `claim` still holds its lease."""
    return {"h_id": claim.run_id, "h_attempt": claim.attempt, "h_owner": claim.owner}


def _claim_of(row: Row, owner: str) -> Claim:
    return Claim(
        run_id=row["id"], attempt=row["attempt"], owner=owner, agent=row["agent"],
        agent_name=row["agent_name"], input=json.loads(row["input_json"]),
        timeout_s=row["timeout_s"], correlation_id=row["correlation_id"],
    )


def _row(conn: Connection, run_id: str, publisher_id: int | None, *, lock: bool = False) -> Row:
    query = _BY_ID_LOCKED if lock else _BY_ID
    row = conn.execute(query, {"r_id": run_id}).mappings().first()
    if row is None or (publisher_id is not None and row["publisher_id"] != publisher_id):
        raise RunNotFound(run_id)
    return row


def _row_by_key(conn: Connection, publisher_id: int, key: str) -> Row | None:
    return conn.execute(_BY_KEY, {"k_owner": publisher_id, "k_key": key}).mappings().first()


def _account_name(conn: Connection, publisher_id: int) -> str:
    """The account's name for the audit trail (`registry.audit.account`, in Core)."""
    name = conn.execute(_ACCOUNT_NAME, {"p_id": publisher_id}).scalar()
    return str(name) if name is not None else f"#{publisher_id}"


def _settle(conn: Connection, row: Row, outcome: Outcome, now: datetime) -> dict[str, Any]:
    """Write `outcome` as the run's final state (the caller locked the run and checked it may
    take it); the run's row as it is now."""
    assert row["status"] not in FINAL, row["status"]
    error = outcome.error
    duration_ms = outcome.duration_ms
    if duration_ms is None and row["started_at"] is not None:
        duration_ms = (_aware(now) - _aware(row["started_at"])).total_seconds() * 1000
    changes: dict[str, Any] = {
        "status": outcome.status,
        "result_json": None if outcome.result is None else json.dumps(outcome.result),
        "finished_at": now, "duration_ms": duration_ms, "fuel_used": outcome.fuel_used,
        "memory_peak_bytes": outcome.memory_peak_bytes, "lease_owner": None,
        "lease_expires_at": None,
    }
    if error is not None:
        changes["error_code"] = error.code
        changes["error_message"] = error.message
        changes["error_detail_json"] = None if error.detail is None else json.dumps(error.detail)
    if outcome.version is not None:
        changes["version"] = outcome.version
    if outcome.agent_name is not None:
        changes["agent_name"] = outcome.agent_name
    conn.execute(_UPDATE_RUN, {**changes, "u_id": row["id"]})
    settled = {**row, **changes}
    data: dict[str, Any] = {"version": settled["version"]}
    if error is not None:
        data["error"] = error.model_dump()
    _event(conn, row["id"], outcome.status, data, now)
    events = [
        _audit_row(
            "step.finish", audit.SYSTEM, "step", settled,
            {"status": step.status, "agent": step.agent, "version": step.version,
             "duration_ms": step.duration_ms},
            now, object_id=f"{row['id']}/{step.name}",
            outcome="failed:step_failed" if step.status == "failed" else "ok",
        )
        for step in outcome.steps
    ]
    code = None if error is None else error.code
    events.append(_audit_row(
        "run.finish", audit.SYSTEM, "run", settled,
        {"status": settled["status"], "agent": settled["agent_name"],
         "version": settled["version"], "duration_ms": duration_ms,
         "fuel_used": outcome.fuel_used},
        now, outcome="ok" if outcome.status == "succeeded" else f"failed:{code or outcome.status}",
    ))
    _audit(conn, events)
    return settled


@dataclass(frozen=True)
class _Inserts:
    """The appends every state change makes, compiled for one dialect and sent on the
    driver's cursor inside the caller's transaction (`core.sql.Prepared`): SQLAlchemy's
    per-execution work cost more than SQLite takes to append a row."""

    event: Prepared
    next_event: Prepared
    audit: Prepared

    @staticmethod
    @lru_cache(maxsize=8)
    def of(dialect: Dialect) -> _Inserts:
        event: dict[str, Any] = {
            name: bindparam(name) for name in ("run_id", "kind", "data_json", "at")
        }
        audit_columns = (
            "at", "actor", "actor_id", "action", "object_type", "object_id", "owner_id",
            "outcome", "correlation_id", "detail_json",
        )
        return _Inserts(
            Prepared.compile(insert(EVENT).values({**event, "seq": bindparam("seq")}), dialect),
            Prepared.compile(_INSERT_NEXT_EVENT.values(event), dialect),
            Prepared.compile(
                insert(AUDIT).values({name: bindparam(name) for name in audit_columns}), dialect
            ),
        )


def _event(
    conn: Connection, run_id: str, kind: str, data: dict[str, Any], now: datetime,
    *, seq: int | None = None,
) -> None:
    """Append the run's next event (`seq`: its number when the caller knows it)."""
    values = {"run_id": run_id, "kind": kind, "data_json": json.dumps(data), "at": now}
    inserts = _Inserts.of(conn.dialect)
    cursor = conn.connection.cursor()
    try:
        if seq is None:
            inserts.next_event.execute(cursor, {**values, "e_run": run_id})
        else:
            inserts.event.execute(cursor, {**values, "seq": seq})
    finally:
        cursor.close()


def _audit_row(
    action: str,
    actor: audit.Actor,
    object_type: str,
    run: Row,
    detail: dict[str, Any],
    at: datetime,
    *,
    object_id: str | None = None,
    outcome: str = "ok",
    of_request: bool = False,
) -> dict[str, Any]:
    """One audit event about `run`, as `registry.audit.record` would write it, under the
    run's correlation id (with `of_request`, the current request's)."""
    assert action in audit.ACTIONS and object_type in audit.OBJECT_TYPES, (action, object_type)
    correlation = None if of_request else run["correlation_id"]
    return {
        "at": at, "actor": actor.name[:64], "actor_id": actor.publisher_id, "action": action,
        "object_type": object_type, "object_id": (object_id or run["id"])[:200],
        "owner_id": run["publisher_id"], "outcome": outcome[:80],
        "correlation_id": correlation or correlation_id(),
        "detail_json": audit.bounded_detail(detail),
    }


def _audit(conn: Connection, events: list[dict[str, Any]]) -> None:
    cursor = conn.connection.cursor()
    try:
        _Inserts.of(conn.dialect).audit.executemany(cursor, events)
    finally:
        cursor.close()


def _aware(moment: datetime) -> datetime:
    """SQLite gives back naive UTC timestamps; make them comparable with aware ones."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _public(row: Row) -> RunPublic:
    error = None
    if row["error_code"] is not None:
        detail = row["error_detail_json"]
        error = RunErrorInfo(
            code=row["error_code"], message=row["error_message"] or "",
            detail=None if detail is None else json.loads(detail),
        )
    result = row["result_json"]
    return RunPublic(
        id=row["id"],
        status=row["status"],
        agent=row["agent"],
        agent_name=row["agent_name"],
        version=row["version"],
        input=json.loads(row["input_json"]),
        result=None if result is None else json.loads(result),
        error=error,
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        usage=RunUsage(
            duration_ms=row["duration_ms"], fuel_used=row["fuel_used"],
            memory_peak_bytes=row["memory_peak_bytes"],
        ),
        timeout_s=row["timeout_s"],
        idempotency_key=row["idempotency_key"],
        attempt=row["attempt"],
        cancel_requested=row["cancel_requested"],
    )
