# groups: web
"""Server time of the web pages, in process (httpx's ASGI transport, no network).

    web.home_p50_ms          GET / over a catalogue of 1,000 packages
    web.package_page_p50_ms  GET /packages/{ns}/{name} of a package with 100 reviews
    web.search_p50_ms        GET /search?q=... over the same catalogue

Data is seeded through the registry library directly (publishers, signed releases, reviews),
then each page is requested many times; the median (and p95) of the per-request times is printed.
Timings are printed, never asserted.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

from _util import emit, percentile

from marketplace.server.app import create_app
from marketplace.server.settings import ServerSettings
from registry.archive import build_files
from registry.service import Registry
from registry.signing import SigningKey

PACKAGES = 1_000
REVIEWS = 100
ROUNDS = 200


def _files(name: str, n: int) -> dict[str, bytes]:
    short = name.split("/")[1]
    template = {"name": name, "version": "1.0.0", "description": f"Agent {n}",
                "capabilities": [f"cap{n % 7}"], "tools": [f"tool{n % 5}"]}
    manifest = {"name": name, "version": "1.0.0", "summary": f"Agent number {n} for text",
                "license": "MIT", "keywords": ["text", f"k{n % 11}"],
                "templates": [f"templates/{short}.json"]}
    readme = (
        f"# {name}\n\nAgent **{n}**.\n\n- one\n- two\n\n```\nagentfactory install {name}\n```\n"
    )
    return {
        "agent.json": json.dumps(manifest).encode(),
        f"templates/{short}.json": json.dumps(template).encode(),
        "process.py": b"def process(task):\n    return {'ok': True}\n",
        "README.md": (readme * 5).encode(),
    }


def seed(registry: Registry) -> str:
    _, token = registry.register_publisher("bench", "bench")
    principal = registry.authenticate(token)
    key = SigningKey.generate()
    registry.add_key(principal, key.public_bytes)
    for n in range(PACKAGES):
        name = f"bench/agent-{n:04d}"
        archive = build_files(_files(name, n))
        signature = key.sign_release(hashlib.sha256(archive).hexdigest(), name, "1.0.0")
        registry.publish(principal, archive, signature, key.key_id)
    target = "bench/agent-0042"
    for n in range(REVIEWS):
        _, reviewer_token = registry.register_publisher(f"reviewer{n:03d}", None)
        reviewer = registry.authenticate(reviewer_token)
        registry.rate(reviewer, target, 1 + n % 5, title=f"Review {n}", body="Useful. " * 20)
    return target


async def measure(app: object, path: str) -> list[float]:
    import httpx

    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    samples: list[float] = []
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for _ in range(20):  # warm-up: compiled templates, caches, connection pool
            (await client.get(path)).raise_for_status()
        for _ in range(ROUNDS):
            start = time.perf_counter()
            response = await client.get(path)
            samples.append((time.perf_counter() - start) * 1000)
            response.raise_for_status()
    return samples


async def run(home: Path) -> None:
    app = create_app(ServerSettings(home=home, bootstrap=False))
    async with app.router.lifespan_context(app):
        registry: Registry = app.state.market.registry
        started = time.perf_counter()
        target = seed(registry)
        print(f"seeded {PACKAGES} packages and {REVIEWS} reviews in "
              f"{time.perf_counter() - started:.1f} s", file=sys.stderr)
        for figure, path in (
            ("web.home", "/"),
            ("web.package_page", f"/packages/{target}"),
            ("web.search", "/search?q=agent&sort=rating"),
        ):
            samples = await measure(app, path)
            emit(f"{figure}_p50_ms", percentile(samples, 50), "ms", rounds=ROUNDS)
            emit(f"{figure}_p95_ms", percentile(samples, 95), "ms", rounds=ROUNDS)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="af-bench-web-") as tmp:
        asyncio.run(run(Path(tmp)))


if __name__ == "__main__":
    main()
