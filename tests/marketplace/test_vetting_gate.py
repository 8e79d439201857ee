"""Admission to vetting: per-account and total caps, a short queue, then 429 with Retry-After.

The gate is driven directly on an event loop: "waiting" is a task parked on the gate, and the
clock behind `Retry-After` is a value the test sets. The same gate in front of a real server is
tried in `tests/reliability/test_vetting_attack.py`.
"""

from __future__ import annotations

import asyncio

import pytest

from marketplace.server.ratelimit import RateLimited
from marketplace.server.settings import ServerSettings
from marketplace.server.vetting import VettingBusy, VettingGate


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def gate(per_account: int = 1, total: int = 2, queue_s: float = 60.0) -> VettingGate:
    return VettingGate(per_account, total, queue_s, slot_s=20.0, clock=Clock())


def test_an_account_at_its_cap_is_refused_at_once_with_when_to_retry() -> None:
    async def scenario() -> VettingBusy:
        g = gate()
        async with g.admit("account:1"):
            g._clock.now += 15  # type: ignore[attr-defined]  # the test's own Clock
            with pytest.raises(VettingBusy) as busy:
                async with g.admit("account:1"):
                    pass
            async with g.admit("account:2"):  # another account is not held up
                assert g.active == 2
        return busy.value

    busy = asyncio.run(scenario())
    assert isinstance(busy, RateLimited)  # so the API answers 429 with Retry-After
    assert busy.scope == "account" and busy.retry_after == 5
    assert str(busy) == ("this account already has 1 upload being vetted (the most it may have "
                         "at once); retry in 5 s")


def test_a_full_server_queues_an_upload_until_a_slot_frees() -> None:
    async def scenario() -> list[str]:
        g = gate(total=1)
        order: list[str] = []
        release = asyncio.Event()

        async def upload(key: str, hold: asyncio.Event | None) -> None:
            async with g.admit(key):
                order.append(f"{key} in")
                if hold is not None:
                    await hold.wait()
            order.append(f"{key} out")

        first = asyncio.create_task(upload("a", release))
        await asyncio.sleep(0)  # let it take the slot
        second = asyncio.create_task(upload("b", None))
        await asyncio.sleep(0)
        assert order == ["a in"] and g.active == 1  # b waits
        release.set()
        await asyncio.gather(first, second)
        return order

    assert asyncio.run(scenario()) == ["a in", "a out", "b in", "b out"]


def test_without_a_queue_a_full_server_answers_busy_at_once() -> None:
    async def scenario() -> VettingBusy:
        g = gate(total=2, queue_s=0.0)
        async with g.admit("a"), g.admit("b"):
            with pytest.raises(VettingBusy) as busy:
                async with g.admit("c"):
                    pass
        async with g.admit("c"):  # free again once they are done
            pass
        return busy.value

    busy = asyncio.run(scenario())
    assert busy.scope == "server" and busy.retry_after == 20
    assert str(busy).startswith("all 2 vetting slots of this server are busy")


def test_a_waiter_that_goes_away_leaves_no_trace() -> None:
    async def scenario() -> None:
        g = gate(total=1)
        async with g.admit("a"):
            waiting = asyncio.create_task(g.admit("b").__aenter__())
            await asyncio.sleep(0)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            assert g._waiters == [] and g._held == {"a": 1}
        async with g.admit("b"):  # b's account slot was given back
            assert g.active == 1

    asyncio.run(scenario())


def test_the_gate_follows_the_settings() -> None:
    settings = ServerSettings(vet_per_publisher=2, vet_concurrency=3, vet_queue_s=1.5,
                              vet_upload_budget_s=12.0)
    g = VettingGate.from_settings(settings)
    assert (g.per_account, g.total, g.queue_s, g.slot_s) == (2, 3, 1.5, 13.0)
    assert VettingGate.from_settings(ServerSettings()).total >= 2  # the sandbox pool's size


@pytest.mark.parametrize(
    ("variable", "value"),
    [("AGENTFACTORY_VET_PER_PUBLISHER", "0"), ("AGENTFACTORY_VET_CONCURRENCY", "-1"),
     ("AGENTFACTORY_VET_UPLOAD_BUDGET", "nan"), ("AGENTFACTORY_VET_EXAMPLE_TIMEOUT", "0"),
     ("AGENTFACTORY_VET_QUEUE", "-1"), ("AGENTFACTORY_VET_EXAMPLE_FUEL", "lots")],
)
def test_bad_vetting_settings_name_the_variable(variable: str, value: str) -> None:
    from core.errors import SettingsError

    with pytest.raises(SettingsError) as bad:
        ServerSettings.from_env({variable: value})
    assert variable in str(bad.value)
