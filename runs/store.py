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
  so the event stream and the run's state never disagree.
- A run of another account is `RunNotFound`, exactly like a run that does not exist.
- Submission, start, end and cancel each append an audit event (`registry.audit`) in the same
  transaction, with the run's correlation id (that of the request that submitted it, stored on
  the run); a workflow's end appends one `step.finish` per step. A refused submission or cancel
  appends its `refused:` event in a transaction of its own.
- `enqueue(session, run_id)`, when an engine sets it, is called inside every transaction that
  makes a run `queued` (creation, a lease expired, a worker lost): a distributed engine defers
  its job there, so a queued run and its job are committed together or not at all.

Time comes from `now` (injectable), so tests drive lease expiry without waiting.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core.context import correlation_id
from core.errors import AgentFactoryError, AgentInputError
from registry import audit
from registry.db import init_db, read_session, write_session
from registry.models import utcnow
from runs.errors import IdempotencyConflict, QuotaExceeded, RunNotFound
from runs.models import Run, RunEvent
from runs.schemas import (
    ACTIVE,
    FINAL,
    Claim,
    NewRun,
    Outcome,
    RunErrorInfo,
    RunEventPublic,
    RunPage,
    RunPublic,
    RunUsage,
)
from runs.settings import RunSettings

Heartbeat = Literal["ok", "cancel", "lost"]
Enqueue = Callable[[Session, str], None]
HOUR = timedelta(hours=1)


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

    def create(self, publisher_id: int, new: NewRun) -> tuple[RunPublic, bool]:
        """The new queued run, and True; or, for a used idempotency key, that run and False."""
        try:
            input_json = json.dumps(new.input, separators=(",", ":"), allow_nan=False)
        except ValueError:
            raise AgentInputError("input: numbers must be finite (no NaN or Infinity)") from None
        try:
            return self._create(publisher_id, new, input_json)
        except AgentFactoryError as exc:  # a quota, a reused idempotency key
            audit.record_refusal(
                self.engine, exc, "run.submit", audit.Actor("", publisher_id), "run", "(new)",
                detail={"agent": new.agent_name},
            )
            raise
        except IntegrityError:
            # Two submissions with one key raced (PostgreSQL); the winner's run is the answer.
            existing = self._by_key(publisher_id, new.idempotency_key)
            if existing is None:
                raise
            return existing, False

    def _create(self, publisher_id: int, new: NewRun, input_json: str) -> tuple[RunPublic, bool]:
        with write_session(self.engine) as s:
            if new.idempotency_key is not None:
                row = _row_by_key(s, publisher_id, new.idempotency_key)
                if row is not None:
                    if (row.agent, row.input_json) != (new.agent, input_json):
                        raise IdempotencyConflict(new.idempotency_key, row.id)
                    return _public(row), False
            now = self.now()
            self._check_quotas(s, publisher_id, now)
            row = Run(
                id=new_run_id(), publisher_id=publisher_id, agent=new.agent,
                agent_name=new.agent_name, version=new.version, input_json=input_json,
                timeout_s=new.timeout_s, idempotency_key=new.idempotency_key, created_at=now,
                correlation_id=correlation_id(),
            )
            s.add(row)
            s.flush()
            audit.record(
                s, "run.submit", audit.Actor("", publisher_id), "run", row.id,
                owner_id=publisher_id, detail={"agent": new.agent_name, "version": new.version},
                at=now,
            )
            _event(s, row, "queued", {"agent": new.agent_name, "version": new.version}, now)
            if self.enqueue is not None:
                self.enqueue(s, row.id)
            return _public(row), True

    def _check_quotas(self, s: Session, publisher_id: int, now: datetime) -> None:
        limits = self.settings
        mine = col(Run.publisher_id) == publisher_id
        if limits.max_concurrent:
            active = s.exec(
                select(func.count()).select_from(Run).where(mine, col(Run.status).in_(ACTIVE))
            ).one()
            if active >= limits.max_concurrent:
                raise QuotaExceeded("concurrent", limits.max_concurrent, 1)
        if limits.max_per_hour:
            since = now - HOUR
            recent = s.exec(
                select(func.count()).select_from(Run).where(mine, col(Run.created_at) > since)
            ).one()
            if recent >= limits.max_per_hour:
                oldest = s.exec(
                    select(func.min(Run.created_at)).where(mine, col(Run.created_at) > since)
                ).one()
                wait = (_aware(oldest) + HOUR - _aware(now)).total_seconds() if oldest else 1
                raise QuotaExceeded("hourly", limits.max_per_hour, max(1.0, wait))

    def _by_key(self, publisher_id: int, key: str | None) -> RunPublic | None:
        if key is None:
            return None
        with read_session(self.engine) as s:
            row = _row_by_key(s, publisher_id, key)
            return None if row is None else _public(row)

    # ------------------------------------------------------------------------------- reading

    def get(self, run_id: str, publisher_id: int | None = None) -> RunPublic:
        """Run `run_id`; with `publisher_id`, only if it is that account's."""
        with read_session(self.engine) as s:
            return _public(_row(s, run_id, publisher_id))

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
        where = [col(Run.publisher_id) == publisher_id]
        if status is not None:
            where.append(col(Run.status) == status)
        if agent is not None:
            where.append(col(Run.agent_name) == agent)
        with read_session(self.engine) as s:
            total = s.exec(select(func.count()).select_from(Run).where(*where)).one()
            rows = s.exec(
                select(Run).where(*where)
                .order_by(col(Run.created_at).desc(), col(Run.id))
                .offset((page - 1) * per_page).limit(per_page)
            ).all()
            items = [_public(row) for row in rows]
        return RunPage(items=items, total=total, page=page, per_page=per_page)

    def events(
        self, run_id: str, after: int = 0, publisher_id: int | None = None
    ) -> list[RunEventPublic]:
        """The run's events numbered above `after`, in order."""
        with read_session(self.engine) as s:
            _row(s, run_id, publisher_id)
            rows = s.exec(
                select(RunEvent).where(RunEvent.run_id == run_id, col(RunEvent.seq) > after)
                .order_by(col(RunEvent.seq))
            ).all()
            return [
                RunEventPublic(seq=r.seq, kind=r.kind, data=json.loads(r.data_json), at=r.at)
                for r in rows
            ]

    def queued(self, limit: int = 1000) -> list[str]:
        """Ids of queued runs, oldest first."""
        with read_session(self.engine) as s:
            return list(s.exec(
                select(Run.id).where(Run.status == "queued")
                .order_by(col(Run.created_at)).limit(limit)
            ).all())

    # ------------------------------------------------------------------------------ executing

    def claim(self, run_id: str, owner: str) -> Claim | None:
        """Run `run_id` for `owner`, if it is still queued; None otherwise."""
        with write_session(self.engine) as s:
            row = s.get(Run, run_id, with_for_update=True)
            if row is None or row.status != "queued":
                return None
            now = self.now()
            row.status = "running"
            row.attempt += 1
            row.lease_owner = owner
            row.lease_expires_at = now + timedelta(seconds=self.settings.lease_s)
            row.started_at = now
            s.add(row)
            _event(s, row, "running", {"attempt": row.attempt}, now)
            audit.record(
                s, "run.start", audit.SYSTEM, "run", row.id, owner_id=row.publisher_id,
                detail={"attempt": row.attempt, "worker": owner},
                correlation=row.correlation_id, at=now,
            )
            return Claim(
                run_id=row.id, attempt=row.attempt, owner=owner, agent=row.agent,
                agent_name=row.agent_name, input=json.loads(row.input_json),
                timeout_s=row.timeout_s, correlation_id=row.correlation_id,
            )

    def heartbeat(self, claim: Claim) -> Heartbeat:
        """Renew the claim's lease: "ok", "cancel" (renewed, but a cancel was asked for) or
        "lost" (the lease is no longer this claim's: stop and write nothing)."""
        with write_session(self.engine) as s:
            row = self._held(s, claim)
            if row is None:
                return "lost"
            row.lease_expires_at = self.now() + timedelta(seconds=self.settings.lease_s)
            s.add(row)
            return "cancel" if row.cancel_requested else "ok"

    def finish(self, claim: Claim, outcome: Outcome) -> bool:
        """Record the claim's outcome; False (and nothing written) if the claim is stale."""
        with write_session(self.engine) as s:
            row = self._held(s, claim)
            if row is None:
                return False
            _settle(s, row, outcome, self.now())
            return True

    def release(self, claim: Claim, reason: str) -> str:
        """Give a claimed run back (its worker was lost): queued again, or failed after
        `max_attempts` deliveries. Returns the run's new status ("" if the claim is stale)."""
        with write_session(self.engine) as s:
            row = self._held(s, claim)
            if row is None:
                return ""
            return self._requeue(s, row, reason)

    def expire_leases(self, *, everything: bool = False) -> list[str]:
        """Requeue (or end) every running run whose lease has expired (with `everything`, every
        running run: its server is known dead); the ids of those requeued."""
        now = self.now()
        query = select(Run).where(Run.status == "running")
        if not everything:
            query = query.where(col(Run.lease_expires_at) < now)
        with write_session(self.engine) as s:
            rows = s.exec(query.with_for_update()).all()
            return [row.id for row in rows if self._requeue(s, row, "lease expired") == "queued"]

    def _requeue(self, s: Session, row: Run, reason: str) -> str:
        now = self.now()
        if row.cancel_requested:
            _settle(s, row, Outcome.failure("cancelled", "cancelled", "cancelled"), now)
        elif row.attempt >= self.settings.max_attempts:
            message = f"worker lost ({reason}) on each of {row.attempt} attempts"
            _settle(s, row, Outcome.failure("failed", "worker_lost", message), now)
        else:
            row.status = "queued"
            row.lease_owner = row.lease_expires_at = None
            s.add(row)
            _event(s, row, "requeued", {"attempt": row.attempt, "reason": reason}, now)
            if self.enqueue is not None:
                self.enqueue(s, row.id)
        return row.status

    def _held(self, s: Session, claim: Claim) -> Run | None:
        row = s.get(Run, claim.run_id, with_for_update=True)
        if (
            row is None
            or row.status != "running"
            or row.attempt != claim.attempt
            or row.lease_owner != claim.owner
        ):
            return None
        return row

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
        with write_session(self.engine) as s:
            row = _row(s, run_id, publisher_id, lock=True)
            now = self.now()
            audit.record(
                s, "run.cancel", who, "run", row.id, owner_id=row.publisher_id,
                detail={"status": row.status}, at=now,
            )
            if row.status == "queued":
                _settle(s, row, Outcome.failure("cancelled", "cancelled", "cancelled"), now)
            elif row.status == "running" and not row.cancel_requested:
                row.cancel_requested = True
                s.add(row)
                _event(s, row, "cancel_requested", {}, now)
            return _public(row)


# --------------------------------------------------------------------------------- helpers


def _row(s: Session, run_id: str, publisher_id: int | None, *, lock: bool = False) -> Run:
    row = s.get(Run, run_id, with_for_update=lock)
    if row is None or (publisher_id is not None and row.publisher_id != publisher_id):
        raise RunNotFound(run_id)
    return row


def _row_by_key(s: Session, publisher_id: int, key: str) -> Run | None:
    return s.exec(
        select(Run).where(Run.publisher_id == publisher_id, Run.idempotency_key == key)
    ).first()


def _settle(s: Session, row: Run, outcome: Outcome, now: datetime) -> None:
    """Write `outcome` as the run's final state (the caller checked the run may take it)."""
    assert row.status not in FINAL, row.status
    row.status = outcome.status
    row.result_json = None if outcome.result is None else json.dumps(outcome.result)
    if outcome.error is not None:
        row.error_code = outcome.error.code
        row.error_message = outcome.error.message
        detail = outcome.error.detail
        row.error_detail_json = None if detail is None else json.dumps(detail)
    if outcome.version is not None:
        row.version = outcome.version
    if outcome.agent_name is not None:
        row.agent_name = outcome.agent_name
    row.finished_at = now
    row.duration_ms = outcome.duration_ms
    if outcome.duration_ms is None and row.started_at is not None:
        row.duration_ms = (_aware(now) - _aware(row.started_at)).total_seconds() * 1000
    row.fuel_used = outcome.fuel_used
    row.memory_peak_bytes = outcome.memory_peak_bytes
    row.lease_owner = row.lease_expires_at = None
    s.add(row)
    data: dict[str, Any] = {"version": row.version}
    if outcome.error is not None:
        data["error"] = outcome.error.model_dump()
    _event(s, row, outcome.status, data, now)
    for step in outcome.steps:
        audit.record(
            s, "step.finish", audit.SYSTEM, "step", f"{row.id}/{step.name}",
            owner_id=row.publisher_id,
            outcome="failed:step_failed" if step.status == "failed" else "ok",
            detail={"status": step.status, "agent": step.agent, "version": step.version,
                    "duration_ms": step.duration_ms},
            correlation=row.correlation_id, at=now,
        )
    code = None if outcome.error is None else outcome.error.code
    audit.record(
        s, "run.finish", audit.SYSTEM, "run", row.id, owner_id=row.publisher_id,
        outcome="ok" if outcome.status == "succeeded" else f"failed:{code or outcome.status}",
        detail={"status": row.status, "agent": row.agent_name, "version": row.version,
                "duration_ms": row.duration_ms, "fuel_used": row.fuel_used},
        correlation=row.correlation_id, at=now,
    )


def _event(s: Session, row: Run, kind: str, data: dict[str, Any], now: datetime) -> None:
    last = s.exec(select(func.max(RunEvent.seq)).where(RunEvent.run_id == row.id)).one()
    s.add(RunEvent(
        run_id=row.id, seq=(last or 0) + 1, kind=kind, data_json=json.dumps(data), at=now
    ))


def _aware(moment: datetime) -> datetime:
    """SQLite gives back naive UTC timestamps; make them comparable with aware ones."""
    from datetime import UTC

    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _public(row: Run) -> RunPublic:
    error = None
    if row.error_code is not None:
        detail = None if row.error_detail_json is None else json.loads(row.error_detail_json)
        error = RunErrorInfo(code=row.error_code, message=row.error_message or "", detail=detail)
    return RunPublic(
        id=row.id,
        status=row.status,  # type: ignore[arg-type]  # the database's check constraint
        agent=row.agent,
        agent_name=row.agent_name,
        version=row.version,
        input=json.loads(row.input_json),
        result=None if row.result_json is None else json.loads(row.result_json),
        error=error,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        usage=RunUsage(
            duration_ms=row.duration_ms, fuel_used=row.fuel_used,
            memory_peak_bytes=row.memory_peak_bytes,
        ),
        timeout_s=row.timeout_s,
        idempotency_key=row.idempotency_key,
        attempt=row.attempt,
        cancel_requested=row.cancel_requested,
    )
