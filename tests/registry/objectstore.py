"""A local S3-compatible server for the object-storage tests (moto, on 127.0.0.1).

`scripts/test` starts one with `scripts/services start` (moto's server on 127.0.0.1:54330) and
passes its URL in `$AGENTFACTORY_TEST_S3_URL`. Without it, outside CI, `s3_server()` starts
moto's threaded server in this process on a free port instead, so a single test file runs on
its own; under `CI=true` a missing URL fails, as CI must prove the S3 store. Each test gets a
bucket of its own (`S3Server.new_bucket`), so test processes sharing the server share nothing.
moto accepts any access key: the fixed ones below are not secrets.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import boto3
import pytest

from registry.blobs_s3 import S3BlobStore, s3_client

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

S3_URL_VAR = "AGENTFACTORY_TEST_S3_URL"
REGION = "us-east-1"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "agentfactory-test",
    "AWS_SECRET_ACCESS_KEY": "agentfactory-test-secret",
    "AWS_DEFAULT_REGION": REGION,
}


@dataclass(frozen=True)
class S3Server:
    endpoint: str

    @cached_property
    def _client(self) -> S3Client:
        session = boto3.session.Session(
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )
        return s3_client(self.endpoint, REGION, session)

    def client(self) -> S3Client:
        """One client for all the tests (boto3 clients are thread-safe; each costs ~0.5 s)."""
        return self._client

    def new_bucket(self) -> str:
        name = f"af-test-{uuid.uuid4().hex[:20]}"
        self.client().create_bucket(Bucket=name)
        return name

    def store(self, bucket: str | None = None, prefix: str = "blobs") -> S3BlobStore:
        return S3BlobStore(self.client(), bucket or self.new_bucket(), prefix)

    def env(self, bucket: str, prefix: str = "blobs") -> dict[str, str]:
        """The server settings (and credentials) of a marketplace keeping its blobs here."""
        return {
            **CREDENTIALS,
            "AGENTFACTORY_BLOB_URL": f"s3://{bucket}/{prefix}",
            "AGENTFACTORY_S3_ENDPOINT": self.endpoint,
            "AGENTFACTORY_S3_REGION": REGION,
        }


def s3_server() -> Iterator[S3Server]:
    """The body of a session fixture: the scripts' server, else one started here."""
    url = os.environ.get(S3_URL_VAR)
    if url:
        yield S3Server(url.rstrip("/"))
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"${S3_URL_VAR} is not set under CI (scripts/test sets it)", pytrace=False)
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Server(f"http://{host}:{port}")
    finally:
        server.stop()
