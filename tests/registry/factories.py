"""Test data for the registry (reused by the marketplace tests).

`package_files(...)` returns the files of a valid package; `make_package_dir` writes them to a
directory; `make_archive` builds the deterministic archive; `raw_zip` crafts archives the
builder would refuse to make (for the unsafe-archive tests). `make_publisher` registers a
publisher with a namespace, a token and a first signing key; `publish` signs and publishes;
`download_as` downloads as an account (so its reviews are verified).
"""

from __future__ import annotations

import io
import json
import random
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry import ReleasePublic
from registry.archive import build_files, pack_files
from registry.schemas import Principal
from registry.service import Registry
from registry.signing import SigningKey

PROCESS_SOURCE = '''"""Echo agent used by the tests."""


def process(task):
    text = str(task.get("text", ""))
    return {"summary": text[:20], "length": len(text)}
'''


def package_files(
    name: str = "acme/summarizer",
    version: str = "1.0.0",
    *,
    summary: str = "Summarizes text",
    keywords: list[str] | None = None,
    capabilities: list[str] | None = None,
    tools: list[str] | None = None,
    template_names: list[str] | None = None,
    requires: dict[str, str] | None = None,
    manifest: dict[str, Any] | None = None,
    extra_files: dict[str, bytes] | None = None,
    pad_to: int = 0,
) -> dict[str, bytes]:
    """Files of a valid package; `manifest` overrides manifest keys (None deletes a key)."""
    namespace = name.split("/")[0].lower().replace(".", "-").replace("_", "-")
    short = name.split("/")[1].lower().replace(".", "-").replace("_", "-")
    templates = template_names or [f"{namespace}/{short}"]
    files: dict[str, bytes] = {}
    paths = []
    for tname in templates:
        path = f"templates/{tname.split('/')[-1]}.json"
        paths.append(path)
        files[path] = json.dumps({
            "name": tname, "version": "1.0.0", "description": summary,
            "capabilities": capabilities or ["summarize"], "tools": tools or [],
        }, indent=2).encode()
    doc: dict[str, Any] = {
        "name": name, "version": version, "summary": summary,
        "description": f"{summary}. A longer description.", "license": "MIT",
        "authors": ["Test Author <t@example.org>"], "homepage": None,
        "keywords": keywords if keywords is not None else ["text", "summary"],
        "entry": "process.py:process", "templates": paths, "requires": requires or {},
        "permissions": [],
        "examples": [{"name": "short", "input": {"text": "hello"},
                      "expected": {"summary": "hello", "length": 5}}],
    }
    for key, value in (manifest or {}).items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    files["agent.json"] = json.dumps(doc, indent=2, sort_keys=True).encode()
    files["process.py"] = PROCESS_SOURCE.encode()
    files["README.md"] = f"# {name}\n\n{summary}\n".encode()
    if pad_to:
        current = sum(len(v) for v in files.values())
        rng = random.Random(f"{name}-{version}")
        # Hex text compresses about 2x, like real source, so archives stay near their size.
        files["data/notes.txt"] = "".join(
            f"{rng.getrandbits(32):08x}" for _ in range(max(0, pad_to - current) // 4)
        ).encode()[: max(0, pad_to - current) * 2]
    files.update(extra_files or {})
    return files


def make_package_dir(root: Path, **kwargs: Any) -> Path:
    for rel, body in package_files(**kwargs).items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
    return root


def make_archive(**kwargs: Any) -> bytes:
    return build_files(package_files(**kwargs))


def unchecked_archive(**kwargs: Any) -> bytes:
    """A deterministic archive that is *not* validated (for invalid-package tests)."""
    return pack_files(package_files(**kwargs))


def raw_zip(entries: list[tuple[str, bytes, int]], *, compress: bool = True) -> bytes:
    """A zip of `(name, body, unix mode)` entries, written without any safety check."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, body, mode in entries:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = mode << 16
            info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
            zf.writestr(info, body)
    return buffer.getvalue()


REGULAR = stat.S_IFREG | 0o644
SYMLINK = stat.S_IFLNK | 0o777


@dataclass
class TestPublisher:
    name: str
    token: str
    principal: Principal
    key: SigningKey

    __test__ = False  # not a pytest class


def make_publisher(
    registry: Registry, name: str = "acme", namespace: str | None = "", *, key: bool = True
) -> TestPublisher:
    """Register `name` owning `namespace` (default: same as name; None: no namespace)."""
    _, token = registry.register_publisher(name, name if namespace == "" else namespace)
    principal = registry.authenticate(token)
    signing = SigningKey.generate()
    if key:
        registry.add_key(principal, signing.public_bytes)
    return TestPublisher(name, token, principal, signing)


def download_as(
    registry: Registry, who: TestPublisher, name: str = "acme/summarizer", version: str = "1.0.0"
) -> None:
    """Download `name` `version` as `who`'s account: what makes `who`'s review of it verified."""
    registry.download(name, version, client=f"publisher:{who.principal.publisher_id}")


def sign(pub: TestPublisher, archive: bytes, name: str, version: str) -> bytes:
    import hashlib

    return pub.key.sign_release(hashlib.sha256(archive).hexdigest(), name, version)


def publish(
    registry: Registry, pub: TestPublisher, name: str | None = None, version: str = "1.0.0",
    **kwargs: Any,
) -> ReleasePublic:
    name = name or f"{pub.name}/summarizer"
    archive = make_archive(name=name, version=version, **kwargs)
    return registry.publish(pub.principal, archive, sign(pub, archive, name, version),
                            pub.key.key_id)
