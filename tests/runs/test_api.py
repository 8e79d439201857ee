"""/api/v1/runs through a started app with real worker processes: what a client sees."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.runs.conftest import BLOCKER, Caller, engine_of, register, wait_until

TEXT = "Agents run in worker processes. The API process only queues them."


def test_a_builtin_agent_runs_and_its_version_is_pinned(alice: Caller) -> None:
    submitted = alice.submit("documentaliste", {"text": TEXT})
    assert submitted.status_code == 202, submitted.text
    body = submitted.json()
    assert body["status"] == "queued"
    assert submitted.headers["location"] == body["links"]["self"] == f"/api/v1/runs/{body['id']}"
    done = alice.wait(body["id"])
    assert done["status"] == "succeeded", done
    assert (done["agent_name"], done["version"]) == ("documentaliste", "1.0.0")
    assert done["result"]["word_count"] == 11
    assert done["error"] is None and done["attempt"] == 1
    assert done["usage"]["duration_ms"] > 0
    assert done["started_at"] and done["finished_at"]


def test_a_submission_can_wait_for_its_result(make_app: Callable[..., Any]) -> None:
    client = make_app(workers=1)
    ivan = register(client, "ivan")
    done = ivan.submit("documentaliste", {"text": TEXT}, wait=30)
    assert done.status_code == 200, done.text  # ended within the wait: the final run
    body = done.json()
    assert (body["status"], body["result"]["word_count"]) == ("succeeded", 11)
    assert done.headers["location"] == f"/api/v1/runs/{body['id']}"
    assert ivan.get(body["id"]) == body  # what the waiter got is what the store holds
    # Not ended within the wait: 202 with the run as it is, which goes on.
    pending = ivan.submit(BLOCKER, {"block": True}, wait=0.3, timeout_s=2)
    assert pending.status_code == 202, pending.text
    assert pending.json()["status"] in ("queued", "running")
    assert ivan.wait(pending.json()["id"])["status"] == "timed_out"
    # A replayed key with `wait` answers by the run's state too: 202 while it goes on.
    slow = ivan.submit(BLOCKER, {"block": True}, wait=0.2, timeout_s=2, idempotency_key="k0")
    replay = ivan.submit(BLOCKER, {"block": True}, wait=0.2, timeout_s=2, idempotency_key="k0")
    assert (slow.status_code, replay.status_code) == (202, 202), replay.text
    assert replay.json()["id"] == slow.json()["id"]
    # A failure within the wait is final too; a replayed key waits for the same run.
    failed = ivan.submit(BLOCKER, {"crash": True}, wait=30, idempotency_key="k1")
    again = ivan.submit(BLOCKER, {"crash": True}, wait=30, idempotency_key="k1")
    assert (failed.status_code, again.status_code) == (200, 200)
    assert failed.json()["status"] == "failed"
    assert again.json() == failed.json()
    for wait in (-1, 61, "soon"):
        refused = ivan.submit("documentaliste", {"text": TEXT}, wait=wait)
        assert refused.status_code == 422, (wait, refused.text)


def test_a_version_specifier_is_checked_and_recorded(alice: Caller) -> None:
    done = alice.run(f"{BLOCKER}>=1.2,<2", {"echo": "pinned"})
    assert (done["status"], done["version"], done["result"]["echo"]) == (
        "succeeded", "1.2.0", "pinned")
    refused = alice.submit(f"{BLOCKER}>=2")
    assert refused.status_code == 404
    assert "1.2.0" in refused.json()["detail"]


def test_the_same_idempotency_key_gives_the_same_run(alice: Caller) -> None:
    first = alice.submit("documentaliste", {"text": TEXT}, idempotency_key="order-42")
    again = alice.submit("documentaliste", {"text": TEXT}, idempotency_key="order-42")
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["id"] == first.json()["id"]
    other = alice.submit("documentaliste", {"text": "else"}, idempotency_key="order-42")
    assert other.status_code == 409
    assert first.json()["id"] in other.json()["detail"]
    listed = alice.client.get("/api/v1/runs", headers=alice.auth).json()
    assert listed["total"] == 1


def test_another_accounts_run_is_not_found(api: Any, alice: Caller) -> None:
    mallory = register(api, "mallory")
    run_id = alice.run("documentaliste", {"text": TEXT})["id"]
    for method, path in (
        ("GET", f"/api/v1/runs/{run_id}"),
        ("GET", f"/api/v1/runs/{run_id}/events"),
        ("POST", f"/api/v1/runs/{run_id}/cancel"),
    ):
        answer = api.request(method, path, headers=mallory.auth)
        assert answer.status_code == 404, (method, path, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["detail"] == f"run {run_id!r} not found"
    assert api.get("/api/v1/runs", headers=mallory.auth).json()["items"] == []


def test_running_needs_the_run_scope(api: Any, alice: Caller) -> None:
    made = api.post("/api/v1/tokens", json={"scopes": ["publish"]}, headers=alice.auth)
    publish_only = {"Authorization": f"Bearer {made.json()['token']}"}
    body = {"agent": "documentaliste", "input": {"text": TEXT}}
    refused = api.post("/api/v1/runs", json=body, headers=publish_only)
    assert refused.status_code == 403
    assert "'run' scope" in refused.json()["detail"]
    assert api.post("/api/v1/runs", json=body).status_code == 401
    assert api.get("/api/v1/runs", headers=publish_only).status_code == 403


def test_quotas_are_refused_with_retry_after(make_app: Callable[..., Any], tmp_path: Any) -> None:
    client = make_app(max_concurrent=1, max_per_hour=2, workers=1)
    carol = register(client, "carol")
    gate = tmp_path / "open"
    blocking = carol.submit(BLOCKER, {"until": str(gate)})
    assert blocking.status_code == 202
    refused = carol.submit("documentaliste", {"text": TEXT})
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["detail"] == "quota reached: 1 run queued or running; retry in 1 s"
    gate.write_text("")
    assert carol.wait(blocking.json()["id"])["status"] == "succeeded"
    assert carol.run("documentaliste", {"text": TEXT})["status"] == "succeeded"
    hourly = carol.submit("documentaliste", {"text": TEXT})
    assert hourly.status_code == 429
    assert 3500 <= int(hourly.headers["retry-after"]) <= 3600
    # Another account has its own quota.
    assert register(client, "dave").run("documentaliste", {"text": TEXT})["status"] == "succeeded"


def test_cancel_a_queued_and_a_running_run(make_app: Callable[..., Any]) -> None:
    client = make_app(workers=1)
    erin = register(client, "erin")
    running = erin.submit(BLOCKER, {"block": True}).json()["id"]
    queued = erin.submit("documentaliste", {"text": TEXT}).json()["id"]
    wait_until(lambda: running in engine_of(client).running(), what="the blocker runs")
    assert erin.get(queued)["status"] == "queued"

    cancelled = erin.cancel(queued)
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["error"]["code"] == "cancelled"

    asked = erin.cancel(running)
    assert asked.status_code == 200
    final = erin.wait(running)
    assert final["status"] == "cancelled", final
    assert final["attempt"] == 1
    # The slot got a fresh worker and goes on serving; a final run stays as it is.
    assert erin.run("documentaliste", {"text": TEXT})["status"] == "succeeded"
    assert erin.cancel(running).json()["status"] == "cancelled"


def test_a_blocked_agent_is_killed_at_its_deadline_while_others_finish(
    make_app: Callable[..., Any],
) -> None:
    client = make_app(workers=2)
    frank = register(client, "frank")
    stuck = frank.submit(BLOCKER, {"block": True}, timeout_s=0.5).json()["id"]
    others = [
        frank.submit("documentaliste", {"text": "word " * n}).json()["id"] for n in range(1, 9)
    ]
    results = [frank.wait(run_id) for run_id in others]
    assert [r["result"]["word_count"] for r in results] == list(range(1, 9))
    final = frank.wait(stuck)
    assert final["status"] == "timed_out"
    assert final["error"]["code"] == "deadline"
    assert "0.5 s" in final["error"]["message"]


def test_two_hundred_concurrent_runs_have_exact_results(
    make_app: Callable[..., Any], tmp_path: Any
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    client = make_app(workers=2)
    gina = register(client, "gina")
    # The first run holds one worker until the others are done, so both take a share whatever
    # the machine's speed; the others are submitted from eight threads at once.
    gate = tmp_path / "gate"
    held = gina.submit(BLOCKER, {"until": str(gate), "echo": 0}).json()["id"]
    with ThreadPoolExecutor(8) as pool:
        ids = [held, *pool.map(lambda n: gina.submit(BLOCKER, {"echo": n}).json()["id"],
                               range(1, 200))]
        first = pool.map(gina.wait, ids[1:])
        results = list(first)
    gate.write_text("")
    results.insert(0, gina.wait(held))
    assert [r["status"] for r in results] == ["succeeded"] * 200
    assert [r["result"]["echo"] for r in results] == list(range(200))
    assert len({r["id"] for r in results}) == 200
    assert len({r["result"]["pid"] for r in results}) == 2  # both workers took a share


def test_a_worker_killed_mid_run_does_not_leave_the_run_running(
    make_app: Callable[..., Any], tmp_path: Any
) -> None:
    import os
    import signal

    client = make_app(workers=1)
    hank = register(client, "hank")
    gate = tmp_path / "gate"
    run_id = hank.submit(BLOCKER, {"until": str(gate)}).json()["id"]
    pid = wait_until(lambda: engine_of(client).running().get(run_id), what="the run starts")
    os.kill(pid, signal.SIGKILL)
    # Given back to the queue and delivered again, to a fresh worker.
    wait_until(lambda: engine_of(client).running().get(run_id) not in (None, pid),
               what="the second attempt starts")
    gate.write_text("")
    final = hank.wait(run_id)
    assert final["status"] == "succeeded"
    assert final["attempt"] == 2
    assert final["result"]["pid"] != pid
    kinds = [e["kind"] for e in _events(client, hank, run_id)]
    assert kinds == ["queued", "running", "requeued", "running", "succeeded"]


def test_an_agents_error_is_typed(alice: Caller) -> None:
    crashed = alice.run(BLOCKER, {"crash": True})
    assert crashed["status"] == "failed"
    assert crashed["error"]["code"] == "agent_error"
    assert "the agent broke" in crashed["error"]["message"]
    refused = alice.run("hardware", {"text": 42})
    assert refused["status"] == "failed"
    assert refused["error"]["code"] in ("invalid_input", "agent_error")


def _events(client: Any, caller: Caller, run_id: str) -> list[dict[str, Any]]:
    with client.stream("GET", f"/api/v1/runs/{run_id}/events", headers=caller.auth) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        text = stream.read().decode()
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            events.append({"id": int(fields["id"]), "kind": fields["event"],
                           "data": json.loads(fields["data"])})
    return events


def test_the_event_stream_follows_a_run_to_its_end(alice: Caller) -> None:
    run_id = alice.submit("documentaliste", {"text": TEXT}).json()["id"]
    events = _events(alice.client, alice, run_id)  # opened right away: it waits for the end
    assert [e["kind"] for e in events] == ["queued", "running", "succeeded"]
    assert [e["id"] for e in events] == [1, 2, 3]
    assert events[-1]["data"]["version"] == "1.0.0"
    resumed = alice.client.get(
        f"/api/v1/runs/{run_id}/events", headers={**alice.auth, "Last-Event-ID": "2"}
    )
    assert "event: succeeded" in resumed.text and "event: queued" not in resumed.text


def test_listing_filters_and_pages(alice: Caller) -> None:
    for n in range(3):
        alice.run("documentaliste", {"text": f"text {n}"})
    alice.run(BLOCKER, {"crash": True})
    runs = alice.client.get("/api/v1/runs", headers=alice.auth,
                            params={"per_page": 2, "page": 2}).json()
    assert (runs["total"], len(runs["items"]), runs["page"]) == (4, 2, 2)
    failed = alice.client.get("/api/v1/runs", headers=alice.auth,
                              params={"status": "failed"}).json()
    assert [r["agent_name"] for r in failed["items"]] == [BLOCKER]
    docs = alice.client.get("/api/v1/runs", headers=alice.auth,
                            params={"agent": "documentaliste"}).json()
    assert docs["total"] == 3


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"agent": "Bad Name!"}, 422, "agent: an agent is a template name"),
        ({"agent": "documentalist"}, 404, "did you mean 'documentaliste'"),
        ({"agent": "nobody/nothing"}, 404, "not found"),
        ({"agent": "documentaliste", "timeout_s": -1}, 422, "timeout_s"),
        ({"agent": "documentaliste", "timeout_s": 1e9}, 422, "timeout_s"),
        ({"agent": "documentaliste", "input": [1, 2]}, 422, "input"),
        ({"agent": "documentaliste", "idempotency_key": "a b"}, 422, "idempotency_key"),
        ({"agent": "documentaliste", "surprise": 1}, 422, "surprise"),
        ({"agent": "documentaliste", "input": {"text": "x" * 300_000}}, 413, "exceeds"),
    ],
)
def test_hostile_submissions_are_refused_precisely(
    alice: Caller, body: dict[str, Any], status: int, says: str
) -> None:
    answer = alice.client.post("/api/v1/runs", json=body, headers=alice.auth)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert says in answer.json()["detail"]
    assert alice.client.get("/api/v1/runs", headers=alice.auth).json()["total"] == 0


def test_no_worker_is_left_behind(tmp_path: Any, blocker_site: Any) -> None:
    import os

    from fastapi.testclient import TestClient

    from marketplace.server.app import create_app
    from marketplace.server.settings import ServerSettings
    from runs.settings import RunSettings

    settings = ServerSettings(home=tmp_path / "home", bootstrap=False, vet_uploads=False,
                              runs=RunSettings(workers=2))
    with TestClient(create_app(settings)) as client:
        ivy = register(client, "ivy")
        assert ivy.run("documentaliste", {"text": TEXT})["status"] == "succeeded"
        pids = wait_until(lambda: len(engine_of(client).pids()) == 2 and engine_of(client).pids())
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
