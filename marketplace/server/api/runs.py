"""Runs: submit a task to an agent, follow it, read its result, cancel it.

Every operation needs a token with the `run` scope and sees only the caller's own runs: another
account's run answers 404 exactly like a run that does not exist. Submission answers 202 at once
(the run is queued; a worker process executes it); submitting again with a used idempotency key
answers 200 with the first run. Quotas (runs queued or running, runs per hour) are per account and
refused with 429 and `Retry-After`.

Waiting is bounded everywhere: `GET /runs/{id}?wait=S` holds the answer until the run is final or
S seconds (at most 60) passed; `POST /runs?wait=S` does the same for the run it submits, so a
client that wants the result sends one request (200 when the run ended within the wait, 202 with
the run still queued or running otherwise). The event stream sends a comment every
`HEARTBEAT_S` while nothing happens and ends when the run is final or after `STREAM_S`. Clients
reconnect with `Last-Event-ID` to resume where they stopped.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from anyio import to_thread
from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

from marketplace.server.api.deps import Runner, RunsDep, get_state, quick_read
from marketplace.server.api.problems import problem_responses
from marketplace.server.api.schemas import AGENT_NAME_PATTERN, RUN_ID, RunCreate, RunOut, RunsPage
from marketplace.server.ratelimit import RateLimited
from runs.errors import QuotaExceeded
from runs.schemas import FINAL, RunEventPublic, RunPublic
from runs.service import RunService
from runs.watch import Subscription

router = APIRouter(tags=["runs"])

PREFIX = "/api/v1"
MAX_WAIT_S = 60.0
HEARTBEAT_S = 15.0
STREAM_S = 600.0
POLL_S = 1.0
RunIdPath = Annotated[str, RUN_ID, Path(description="A run's id.")]
RUN_PROBLEMS = problem_responses(401, 403, 404)
Status = Literal["queued", "running", "succeeded", "failed", "timed_out", "cancelled"]


class QuotaLimited(RateLimited):
    """A run quota, as the API's 429: the quota's own words and the wait."""

    def __init__(self, quota: QuotaExceeded) -> None:
        super().__init__("run", quota.retry_after)
        self.quota = quota
        self.args = (f"{quota}; retry in {self.retry_after} s",)


def _out(run: RunPublic) -> RunOut:
    return RunOut.of(run, PREFIX)


WaitQuery = Annotated[
    float,
    Query(ge=0, le=MAX_WAIT_S, description="Seconds to wait for the run to reach a final state."),
]


@router.post(
    "/runs",
    status_code=202,
    response_model=RunOut,
    responses={
        200: {"description": "A run submitted earlier with this idempotency key, or, with "
              "`wait`, a run that ended within the wait", "model": RunOut},
        **problem_responses(401, 403, 404, 409, 413, 429),
    },
)
async def submit_run(
    body: RunCreate,
    principal: Runner,
    runs: RunsDep,
    request: Request,
    response: Response,
    wait: WaitQuery = 0,
) -> RunOut:
    """Queue a run of an agent on an input; with `wait`, answer when it has ended (200) or
    when the wait is over (202, the run still queued or running), replayed key or not."""
    factory = get_state(request).factory
    deadline = time.monotonic() + wait
    with runs.watch.watching(progress=False) as sub:
        try:
            run, created = await runs.submit(
                factory, principal.publisher_id, body.agent, body.input,
                timeout_s=body.timeout_s, idempotency_key=body.idempotency_key,
                actor=principal.name, subscription=sub,
                request_bytes=_declared_size(request),
            )
        except QuotaExceeded as exc:
            raise QuotaLimited(exc) from exc
        if wait > 0:
            run = await _until_final(runs, run.id, principal.publisher_id, sub, deadline, run)
    # Without `wait`, 200 tells a replayed key; with it, 200 tells a run that has ended.
    if (run.status in FINAL) if wait > 0 else not created:
        response.status_code = 200
    response.headers["Location"] = f"{PREFIX}/runs/{run.id}"
    return _out(run)


def _declared_size(request: Request) -> int | None:
    """The request's Content-Length, if it gave a valid one (the body limit held it to it)."""
    declared = request.headers.get("content-length", "")
    return int(declared) if declared.isdigit() else None


async def _read(runs: RunService, run_id: str, owner: int) -> RunPublic:
    """The caller's run (`deps.quick_read`: on SQLite, read on the event loop)."""
    return await quick_read(runs.store.engine, runs.store.get, run_id, owner)


async def _until_final(
    runs: RunService, run_id: str, owner: int, sub: Subscription, deadline: float,
    run: RunPublic | None = None,
) -> RunPublic:
    """The run once final, or as it is at `deadline`. `sub` follows it; `run`, when given, is
    its state (the caller's own run) as read after `sub` was bound."""
    owned = run is not None  # `sub.final` is trusted once the run is known to be the caller's
    while True:
        if owned and sub.final is not None:  # ended by this process's engine: as written
            return sub.final
        if run is None:
            sub.clear()  # before reading: a change after the read wakes the wait below
            run = await _read(runs, run_id, owner)  # 404 if it is not theirs
            owned = True
        remaining = deadline - time.monotonic()
        if run.status in FINAL or remaining <= 0:
            return run
        # Woken by this process's engine; the timeout also catches other processes' writes.
        await sub.wait(min(remaining, POLL_S))
        run = None


@router.get("/runs", response_model=RunsPage, responses=RUN_PROBLEMS)
def list_runs(
    principal: Runner,
    runs: RunsDep,
    status: Status | None = None,
    agent: Annotated[
        str | None, Query(pattern=f"^{AGENT_NAME_PATTERN}$", max_length=200)
    ] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=100)] = 20,
) -> RunsPage:
    """The caller's runs, newest first."""
    found = runs.store.list_runs(
        principal.publisher_id, status=status, agent=agent, page=page, per_page=per_page
    )
    return RunsPage(
        items=[_out(r) for r in found.items], total=found.total, page=found.page,
        per_page=found.per_page,
    )


@router.get("/runs/{run_id}", response_model=RunOut, responses=RUN_PROBLEMS)
async def get_run(
    run_id: RunIdPath,
    principal: Runner,
    runs: RunsDep,
    wait: WaitQuery = 0,
) -> RunOut:
    """A run: its state, then its result or typed error, timings and usage."""
    owner = principal.publisher_id
    if wait <= 0:
        return _out(await _read(runs, run_id, owner))
    deadline = time.monotonic() + wait
    with runs.watch.subscribe(run_id, progress=False) as sub:
        return _out(await _until_final(runs, run_id, owner, sub, deadline))


@router.get(
    "/runs/{run_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Server-Sent Events: one event per state change, until the run is "
            "final (`id` is the event's number, `event` its kind, `data` JSON)",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **RUN_PROBLEMS,
    },
)
async def run_events(
    run_id: RunIdPath,
    principal: Runner,
    runs: RunsDep,
    # Not `int | None`: a header cannot carry a null, so the document must not offer one.
    last_event_id: Annotated[
        int, Header(ge=0, le=2**31, description="Resume after this event number.")
    ] = 0,
) -> StreamingResponse:
    """Follow a run's progress as Server-Sent Events."""
    owner = principal.publisher_id
    first = await to_thread.run_sync(runs.store.events, run_id, last_event_id, owner)
    return StreamingResponse(
        _stream(runs, run_id, owner, first, last_event_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _stream(
    runs: RunService, run_id: str, owner: int, first: list[RunEventPublic], after: int
) -> AsyncIterator[str]:
    started = quiet_since = time.monotonic()
    events = first
    with runs.watch.subscribe(run_id) as sub:
        while True:
            for event in events:
                data = json.dumps(event.data, separators=(",", ":"))
                yield f"id: {event.seq}\nevent: {event.kind}\ndata: {data}\n\n"
                after, quiet_since = event.seq, time.monotonic()
                if event.kind in FINAL:
                    return
            now = time.monotonic()
            if now - started >= STREAM_S:
                yield ": the stream's time is up; reconnect with Last-Event-ID\n\n"
                return
            if now - quiet_since >= HEARTBEAT_S:
                yield ": keep-alive\n\n"
                quiet_since = now
            sub.clear()  # before reading: a change after the read wakes the wait below
            events = await to_thread.run_sync(runs.store.events, run_id, after, owner)
            if not events:
                # Woken by this process's engine; the timeout catches other processes' writes.
                await sub.wait(POLL_S)


@router.post("/runs/{run_id}/cancel", response_model=RunOut, responses=RUN_PROBLEMS)
def cancel_run(run_id: RunIdPath, principal: Runner, runs: RunsDep) -> RunOut:
    """Cancel a run: a queued one ends at once; a running one's worker is stopped."""
    return _out(runs.cancel(run_id, principal.publisher_id))
