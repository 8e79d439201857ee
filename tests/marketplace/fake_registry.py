"""An in-memory registry speaking the read side of the `/api/v1` contract, for client tests.

It serves real, signed archives (built by `registry.archive` from scaffolded packages) through
`httpx.MockTransport`, so the installer's checks run on real bytes and real signatures; only the
HTTP server is faked. Knobs (`tamper`, `lie_digest`) simulate a hostile or broken server.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from marketplace.client.http import MarketplaceClient
from marketplace.client.scaffold import scaffold, set_version
from registry.archive import build_archive, read_archive, record_digest
from registry.names import normalize_name
from registry.signing import SigningKey


def b64(data: bytes) -> str:
    """URL-safe base64, as the real server's JSON bodies carry bytes."""
    return base64.urlsafe_b64encode(data).decode()


@dataclass
class FakeRelease:
    name: str
    version: str
    data: bytes
    digest: str
    signature: str
    key_id: str
    requires: dict[str, str]
    yanked: bool = False
    yank_reason: str | None = None

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "digest": self.digest,
            "size": len(self.data),
            "signature": self.signature,
            "key_id": self.key_id,
            "yanked": self.yanked,
            "yank_reason": self.yank_reason,
            "requires": self.requires,
            "uploaded_at": "2025-01-01T00:00:00Z",
        }


@dataclass
class FakeRegistry:
    workdir: Path
    packages: dict[str, dict[str, FakeRelease]] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    tamper: bool = False
    requests: list[str] = field(default_factory=list)

    # -- publishing side (direct, no HTTP) -------------------------------------------------
    def add_key(self, publisher: str, key: SigningKey, signed_by: SigningKey | None = None) -> None:
        statement = signed_by.sign_rotation(key.public_bytes, publisher) if signed_by else None
        self.keys[key.key_id] = {
            "key_id": key.key_id,
            "publisher": publisher,
            "public_key": b64(key.public_bytes),
            "revoked": False,
            "signed_by": signed_by.key_id if signed_by else None,
            "rotation_signature": b64(statement) if statement else None,
        }

    def publish(
        self,
        publisher: str,
        key: SigningKey,
        name: str,
        version: str,
        requires: dict[str, str] | None = None,
        *,
        examples_pass: bool = True,
        process_extra: str = "",
    ) -> FakeRelease:
        slug = normalize_name(name).replace("/", "__")
        directory = self.workdir / f"{slug}-{version}-{sum(map(len, self.packages.values()))}"
        scaffold(directory, name)
        set_version(directory, version)
        manifest_path = directory / "agent.json"
        manifest = json.loads(manifest_path.read_text())
        manifest["requires"] = requires or {}
        if not examples_pass:
            manifest["examples"][0]["expected"] = {"words": -1}
        manifest_path.write_text(json.dumps(manifest))
        if process_extra:
            with (directory / "process.py").open("a", encoding="utf-8") as source:
                source.write(process_extra)
        data = build_archive(directory)
        package = read_archive(data)
        release = FakeRelease(
            name,
            version,
            data,
            package.digest,
            b64(key.sign_release(package.digest, name, version, record_digest(package.files))),
            key.key_id,
            requires or {},
        )
        self.packages.setdefault(normalize_name(name), {})[version] = release
        self.owners[normalize_name(name)] = publisher
        return release

    # -- HTTP side -------------------------------------------------------------------------
    def client(self, token: str | None = None) -> MarketplaceClient:
        transport = httpx.MockTransport(self.handle)
        return MarketplaceClient("https://registry.test", token, transport=transport)

    def _problem(self, status: int, detail: str, code: str = "NotFound") -> httpx.Response:
        return httpx.Response(
            status,
            json={
                "type": "about:blank",
                "title": code,
                "status": status,
                "detail": detail,
                "code": code,
            },
            headers={"content-type": "application/problem+json"},
        )

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api/v1")
        self.requests.append(f"{request.method} {path}")
        if m := re.fullmatch(r"/publishers/([^/]+)/keys", path):
            return httpx.Response(
                200, json=[k for k in self.keys.values() if k["publisher"] == m[1]]
            )
        m = re.fullmatch(r"/packages/([^/]+)/([^/]+)(/.*)?", path)
        if not m:
            return self._problem(404, f"no route {path}")
        key = normalize_name(f"{m[1]}/{m[2]}")
        releases = self.packages.get(key)
        if releases is None:
            return self._problem(404, f"package {key!r} not found")
        rest = m[3] or ""
        if rest == "":
            latest = max(releases.values(), key=lambda r: r.version)
            return httpx.Response(
                200,
                json={
                    "name": latest.name,
                    "summary": "s",
                    "publisher": self.owners[key],
                    "latest_version": latest.version,
                },
            )
        if rest == "/versions":
            return httpx.Response(200, json=[r.public() for r in releases.values()])
        if dm := re.fullmatch(r"/versions/([^/]+)/download", rest):
            release = releases.get(dm[1])
            if release is None:
                return self._problem(404, "no such version")
            data = release.data
            if self.tamper:
                data = data[:-20] + bytes(20)
            return httpx.Response(
                200,
                content=data,
                headers={
                    "content-type": "application/zip",
                    "x-agentfactory-digest": release.digest,
                    "x-agentfactory-signature": release.signature,
                    "x-agentfactory-key-id": release.key_id,
                },
            )
        return self._problem(404, f"no route {path}")
