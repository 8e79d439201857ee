"""`/metrics` as a Prometheus server reads it: scraped from a real app, parsed with
prometheus-client's own parser; multi-process aggregation with real processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.marketplace.conftest import Actor, make_package

ROOT = Path(__file__).resolve().parents[2]


def scrape(client: Any, accept: str | None = None) -> dict[str, list[Sample]]:
    """Samples by metric family name, from one `/metrics` answer."""
    headers = {"accept": accept} if accept else {}
    answer = client.get("/metrics", headers=headers)
    assert answer.status_code == 200
    return {f.name: f.samples for f in text_string_to_metric_families(answer.text)}


def value(families: dict[str, list[Sample]], sample: str, **labels: str) -> float:
    [match] = [
        s for samples in families.values() for s in samples
        if s.name == sample and s.labels == labels
    ]  # fmt: skip
    return match.value


def test_server_counters_and_request_latency(api: Any, acme: Actor, tmp_path: Path) -> None:
    acme.publish(make_package(tmp_path), "acme/summarizer", "1.0.0")
    url = "/api/v1/packages/acme/summarizer/versions/1.0.0/download"
    api.get(url)
    api.get(url, params={"install": 1})
    answer = api.get("/metrics")
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = scrape(api)
    assert value(families, "agentfactory_publishes_total") == 1
    assert value(families, "agentfactory_downloads_total") == 2
    assert value(families, "agentfactory_installs_total") == 1
    route = "/api/v1/packages/{namespace}/{name}/versions/{version}/download"
    labels = {"method": "GET", "route": route, "status": "200"}
    assert value(families, "agentfactory_http_request_duration_seconds_count", **labels) == 2
    figures = api.get("/api/v1/metrics/agent_factory").json()
    assert (figures["publishes"], figures["downloads"], figures["installs"]) == (1, 2, 1)


def test_timers_move_when_agents_are_created_and_templates_load(api: Any) -> None:
    factory = api.app.state.market.factory
    before = scrape(api)
    assert value(before, "agentfactory_templates_loaded") >= 3
    loads = value(before, "agentfactory_template_load_seconds_count")
    assert loads >= value(before, "agentfactory_templates_loaded")  # every built-in file, once
    # The operator defaults preload three built-ins, so they were resolved before any request.
    assert value(before, "agentfactory_template_resolve_seconds_count") >= 3
    created = value(before, "agentfactory_agent_create_seconds_count")

    for _ in range(3):
        factory.create_agent("documentaliste")
    factory.templates.reload()  # what an edited template file triggers with hot reload on

    after = scrape(api)
    assert value(after, "agentfactory_agent_create_seconds_count") == created + 3
    assert value(after, "agentfactory_agents_created_total") == created + 3
    assert value(after, "agentfactory_agent_create_seconds_sum") > 0
    assert value(after, "agentfactory_template_load_seconds_count") >= 2 * loads
    inf = value(after, "agentfactory_agent_create_seconds_bucket", le="+Inf")
    assert inf == created + 3
    assert value(after, "agentfactory_template_cache_hits_total") >= 2
    assert api.get("/api/v1/metrics/agent_factory").json()["agents_created"] == created + 3


def test_process_and_platform_metrics_are_exposed(api: Any) -> None:
    families = scrape(api)
    assert value(families, "process_resident_memory_bytes") > 0
    assert families["process_cpu_seconds"]
    [info] = families["python_info"]
    assert info.labels["implementation"] == "CPython"


def test_openmetrics_when_asked(api: Any) -> None:
    answer = api.get("/metrics", headers={"accept": "application/openmetrics-text"})
    assert answer.headers["content-type"].startswith("application/openmetrics-text")
    assert answer.text.endswith("# EOF\n")


def test_two_apps_in_one_process_count_separately(
    make_app: Any, acme: Actor, tmp_path: Path
) -> None:
    acme.publish(make_package(tmp_path), "acme/summarizer", "1.0.0")
    other = make_app()
    assert value(scrape(other), "agentfactory_publishes_total") == 0
    assert value(scrape(acme.client), "agentfactory_publishes_total") == 1


WORKER = """
import sys
from marketplace.server.metrics import ServerMetrics
metrics = ServerMetrics()
for _ in range(int(sys.argv[1])):
    metrics.publishes.inc()
metrics.requests.labels("GET", "/healthz", "200").observe(0.002)
if sys.argv[2] == "scrape":
    sys.stdout.write(metrics.exposition()[0].decode())
"""


def test_multiprocess_mode_sums_every_worker(tmp_path: Path) -> None:
    """Three processes share PROMETHEUS_MULTIPROC_DIR: the one that answers reports them all."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}

    def worker(publishes: int, mode: str) -> str:
        run = subprocess.run(
            [sys.executable, "-c", WORKER, str(publishes), mode],
            env=env, capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        return run.stdout

    worker(2, "quiet")
    worker(3, "quiet")
    text = worker(1, "scrape")
    families = {f.name: f.samples for f in text_string_to_metric_families(text)}
    assert value(families, "agentfactory_publishes_total") == 6
    labels = {"method": "GET", "route": "/healthz", "status": "200"}
    assert value(families, "agentfactory_http_request_duration_seconds_count", **labels) == 3
    assert "process_resident_memory_bytes" in families  # the answering worker's own
