"""Scale-out: the marketplace on PostgreSQL and S3-compatible object storage.

    python benchmarks/run.py scale

Each figure has its own function; `main` prints them in turn.

`scale.publish_per_s_pg` (report only): signed packages published per second through the API
(an in-process app over `ServerSettings`, no vetting, no rate limit) into a fresh PostgreSQL
database, with the blobs in S3-compatible object storage. The archives are built and signed
before the clock starts, so the figure is the server's pipeline (parse, validate, verify,
dedupe, the blob `PutObject`, index, commit). PostgreSQL is `$AGENTFACTORY_TEST_PG_URL`, else the
server of `scripts/pg start`; object storage is `$AGENTFACTORY_TEST_S3_URL`, else the local moto
server of `scripts/services start s3` (stopped again if this script started it). Without either,
the figure is not printed and the reason goes to stderr.
"""

# groups: scale

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from _util import emit

if TYPE_CHECKING:
    from registry.signing import SigningKey

ROOT = Path(__file__).resolve().parent.parent
PUBLISHES = 40
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret"}


class Unavailable(Exception):
    """A service a figure needs cannot be had; the figure is skipped."""


def _script(*args: str) -> str:
    done = subprocess.run([str(ROOT / "scripts" / args[0]), *args[1:]], capture_output=True,
                          text=True, cwd=ROOT)
    if done.returncode != 0:
        raise Unavailable(f"scripts/{' '.join(args)}: {done.stderr.strip()[-300:]}")
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


@contextmanager
def postgres_database() -> Iterator[str]:
    """A new, empty database on the test server, dropped afterwards."""
    from sqlalchemy import make_url, text

    from registry.db import make_engine

    server = os.environ.get("AGENTFACTORY_TEST_PG_URL") or _script("pg", "start")
    name = f"bench_{uuid.uuid4().hex[:12]}"
    admin = make_engine(server).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def object_storage() -> Iterator[str]:
    """The endpoint of an S3-compatible server: the given one, else the scripts' moto."""
    given = os.environ.get("AGENTFACTORY_TEST_S3_URL")
    if given:
        yield given.rstrip("/")
        return
    was_running = subprocess.run([str(ROOT / "scripts" / "services"), "status", "s3"],
                                 capture_output=True).returncode == 0
    _script("services", "start", "s3")
    try:
        yield _script("services", "url", "s3")
    finally:
        if not was_running:
            _script("services", "stop", "s3")


def _signed_packages(home: Path, count: int) -> tuple[SigningKey, list[tuple[bytes, str]]]:
    """A publisher key and `count` archives (versions 1.0.0, 1.0.1, ...) with signatures."""
    from registry.archive import build_archive, read_archive, record_digest
    from registry.signing import SigningKey

    key = SigningKey.generate()
    signed: list[tuple[bytes, str]] = []
    for i in range(count):
        version = f"1.0.{i}"
        folder = home / "src" / version
        (folder / "templates").mkdir(parents=True)
        (folder / "agent.json").write_text(json.dumps({
            "name": "bench/echo", "version": version, "summary": "Echoes", "license": "MIT",
            "templates": ["templates/echo.json"],
        }))
        (folder / "templates" / "echo.json").write_text(json.dumps({
            "name": "bench/echo", "version": version, "description": "Echoes",
            "capabilities": ["text.echo"], "tools": [],
        }))
        (folder / "process.py").write_text("def process(task):\n    return task\n")
        (folder / "README.md").write_text("# bench/echo\n")
        archive = build_archive(folder)
        record = record_digest(read_archive(archive).files)
        signature = key.sign_release(hashlib.sha256(archive).hexdigest(), "bench/echo", version,
                                     record)
        signed.append((archive, base64.b64encode(signature).decode()))
    return key, signed


def publish_per_s_pg() -> float:
    """`scale.publish_per_s_pg`: publishes per second on PostgreSQL + object storage."""
    from fastapi.testclient import TestClient

    from marketplace.server.app import create_app
    from marketplace.server.settings import RateLimit, ServerSettings
    from registry.blobs_s3 import s3_client

    os.environ.update({k: os.environ.get(k, v) for k, v in CREDENTIALS.items()})
    with postgres_database() as database, object_storage() as endpoint, \
            tempfile.TemporaryDirectory(prefix="af-bench-scale-") as tmp:
        bucket = f"bench-{uuid.uuid4().hex[:16]}"
        s3_client(endpoint, "us-east-1").create_bucket(Bucket=bucket)
        key, signed = _signed_packages(Path(tmp), PUBLISHES + 1)
        settings = ServerSettings(
            home=Path(tmp) / "home", database_url=database, blob_url=f"s3://{bucket}/blobs",
            s3_endpoint=endpoint, s3_region="us-east-1", bootstrap=False, vet_uploads=False,
            publish_rate=RateLimit(0, 0.0), register_rate=RateLimit(0, 0.0),
        )
        with TestClient(create_app(settings)) as client:
            reply = client.post("/api/v1/publishers", json={"name": "bench", "namespace": "bench"})
            auth = {"Authorization": f"Bearer {reply.json()['token']}"}
            client.post("/api/v1/keys", headers=auth,
                        json={"public_key": base64.b64encode(key.public_bytes).decode()})

            def publish(archive: bytes, signature: str) -> None:
                answer = client.post(
                    "/api/v1/packages", headers=auth,
                    data={"signature": signature, "key_id": key.key_id},
                    files={"archive": ("p.zip", archive, "application/zip")},
                )
                assert answer.status_code == 201, answer.text

            publish(*signed[0])  # warm: first package row, connections, the S3 client
            started = time.perf_counter()
            for archive, signature in signed[1:]:
                publish(archive, signature)
            return PUBLISHES / (time.perf_counter() - started)


def main(prefix: str) -> None:
    figures = {"scale.publish_per_s_pg": (publish_per_s_pg, "publishes/s")}
    for name, (measure, unit) in figures.items():
        if not name.startswith(prefix):
            continue
        try:
            emit(name, measure(), unit, publishes=PUBLISHES, target="report")
        except Unavailable as exc:
            print(f"{name}: not measured: {exc}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "")
