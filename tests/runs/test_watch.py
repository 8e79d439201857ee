"""The watch that wakes waiters: who is woken by what, and what a final wake carries."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime

from runs.schemas import FinalStatus, RunPublic, RunUsage
from runs.watch import RunWatch


def _run(run_id: str, status: FinalStatus) -> RunPublic:
    return RunPublic(
        id=run_id, status=status, agent="a", agent_name="a", version="1", input={},
        result={"ok": True}, error=None, created_at=datetime.now(UTC), started_at=None,
        finished_at=None, usage=RunUsage(), timeout_s=1, idempotency_key=None, attempt=1,
        cancel_requested=False,
    )


def test_a_start_wakes_streams_only_and_an_end_carries_the_run() -> None:
    async def scenario() -> None:
        watch = RunWatch()
        with watch.subscribe("r1") as stream, watch.subscribe("r1", progress=False) as poll:
            await asyncio.to_thread(watch.progress, "r1")  # from another thread, as engines do
            assert await stream.wait(1)
            assert not await poll.wait(0.05)  # a start cannot end the run: the poll sleeps on
            stream.clear()
            await asyncio.to_thread(watch.settle, _run("r1", "succeeded"))
            assert await poll.wait(1) and await stream.wait(1)
            assert poll.final is not None and poll.final.status == "succeeded"
        assert watch._subscribers == {}  # both dropped on exit

    asyncio.run(scenario())


def test_a_subscription_bound_after_creation_misses_no_end() -> None:
    async def scenario() -> None:
        watch = RunWatch()
        with watch.watching(progress=False) as sub:
            other = _run("r2", "failed")
            watch.settle(_run("r9", "succeeded"))  # another run's end is not this one's
            bound = threading.Thread(target=watch.bind, args=(sub, "r2"))
            bound.start()
            bound.join()
            watch.settle(other)
            assert await sub.wait(1)
            assert sub.final == other
        assert watch._subscribers == {}

    asyncio.run(scenario())


def test_a_waiter_never_takes_an_end_it_was_not_shown_to_own() -> None:
    """A long poll binds to the id it is given before reading the run; if that run ends in
    between, the end it is handed must not reach a caller who does not own the run."""
    from sqlalchemy import create_engine

    from marketplace.server.api.runs import _until_final
    from runs.errors import RunNotFound

    class Store:
        engine = create_engine("sqlite://")

        def get(self, run_id: str, owner: int) -> RunPublic:
            raise RunNotFound(run_id)  # not this caller's run

    class Runs:
        store = Store()

    async def scenario() -> None:
        watch = RunWatch()
        with watch.subscribe("theirs", progress=False) as sub:
            watch.settle(_run("theirs", "succeeded"))  # ends before the waiter reads
            try:
                await _until_final(Runs(), "theirs", 7, sub, time.monotonic() + 1)  # type: ignore[arg-type]
            except RunNotFound:
                return
            raise AssertionError("another account's run was handed out")

    asyncio.run(scenario())


def test_a_subscription_bound_after_its_waiter_left_is_not_kept() -> None:
    """The engine's reader binds a submitter's subscription when the run's creation arrives;
    if the request was cancelled meanwhile (its `watching` block is over), nothing is kept."""

    async def scenario() -> None:
        watch = RunWatch()
        with watch.watching(progress=False) as sub:
            pass  # the request went away before its run was created
        await asyncio.to_thread(watch.bind, sub, "r1")
        assert watch._subscribers == {}
        await asyncio.to_thread(watch.settle, _run("r1", "succeeded"))  # wakes nobody, no error

    asyncio.run(scenario())
