"""Publish the built-in agents as signed packages of the `builtin` namespace.

A new marketplace is not empty: on start the server publishes, for each built-in agent that has
stdlib-only logic (`plugins/logic/<name>.py`) and a template (`templates/<name>.json`), a package
`builtin/<name>` made of a manifest, the template renamed into the namespace, the logic as
`process.py`, a README and one example whose expected output is computed by running that same
logic here (it is deterministic), so the sandbox vetting of an install checks real behaviour.

Invariants: the server's `builtin` publisher, its API token and its Ed25519 key live under
`home/server/` with mode 0600 (the directory 0700); publishing goes through the registry's normal
pipeline (no shortcut); a version already published is skipped, so later starts publish nothing
and never fail; if the credentials were lost, the packages already there stay and a warning says
why nothing new is published.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.paths import builtin_templates_dir
from registry.archive import build_archive, open_archive, record_digest
from registry.errors import NotFound, RegistryError
from registry.schemas import Principal
from registry.service import Registry
from registry.signing import SigningKey

log = logging.getLogger("agentfactory.marketplace")

NAMESPACE = "builtin"
PUBLISHER = "builtin"

# One realistic input per built-in agent, used as the package's vetting example.
SAMPLE_INPUTS: dict[str, dict[str, Any]] = {
    "documentaliste": {
        "text": "# Notes\n\nAgent Factory builds agents from templates. Packages are signed "
        "with Ed25519 keys. Reviews help users choose the agents they trust."
    },
    "genie_logiciel": {"source": "def add(a, b):\n    return a + b\n"},
    "hardware": {"text": "A server with 64 GB of RAM, 16 cores and a 2 TB NVMe disk."},
    "security_analyst": {"text": "Write to alice@example.com for access to the staging host."},
}


@dataclass(frozen=True)
class Credentials:
    principal: Principal
    key: SigningKey


def _write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _credentials(registry: Registry, home: Path) -> Credentials | None:
    folder = home / "server"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    token_file, key_file = folder / "builtin.token", folder / "builtin.key"
    if token_file.exists():
        principal = registry.authenticate(token_file.read_text().strip())
    else:
        try:
            registry.publisher(PUBLISHER)
        except NotFound:
            _, token = registry.register_publisher(PUBLISHER, NAMESPACE)
            _write_secret(token_file, token)
            principal = registry.authenticate(token)
        else:
            log.warning("the builtin publisher exists but %s is missing: skipping", token_file)
            return None
    if key_file.exists():
        key = SigningKey.load(key_file)
    else:
        key = SigningKey.generate()
        key.save(key_file)
    if key.key_id not in {k.key_id for k in registry.keys(PUBLISHER) if not k.revoked}:
        registry.add_key(principal, key.public_bytes)
    return Credentials(principal, key)


def builtin_agents() -> list[str]:
    """Built-in agents that can ship as packages: stdlib logic plus a template."""
    logic = Path(importlib.import_module("plugins.logic").__file__ or "").parent
    templates = builtin_templates_dir()
    return sorted(
        p.stem
        for p in logic.glob("*.py")
        if p.stem != "__init__" and (templates / f"{p.stem}.json").is_file()
    )


def _package_files(agent: str) -> dict[str, str]:
    template = json.loads((builtin_templates_dir() / f"{agent}.json").read_text(encoding="utf-8"))
    name = f"{NAMESPACE}/{agent}"
    template["name"] = name
    # The package's own process.py implements it (the registry defaults to the package name).
    template.pop("implementation", None)
    logic = importlib.import_module(f"plugins.logic.{agent}")
    source = Path(logic.__file__ or "").read_text(encoding="utf-8")
    examples = []
    if agent in SAMPLE_INPUTS:
        sample = SAMPLE_INPUTS[agent]
        expected = json.loads(json.dumps(logic.process(dict(sample))))
        examples.append({"name": "sample", "input": sample, "expected": expected})
    description = str(template.get("description", "")) or f"The built-in {agent} agent."
    metadata = template.get("metadata", {})
    manifest = {
        "name": name,
        "version": str(template["version"]),
        "summary": description[:300],
        "description": description,
        "license": str(metadata.get("license", "MIT")),
        "authors": [str(metadata.get("author", "Agent Factory"))],
        "keywords": [str(t) for t in metadata.get("tags", [])][:30],
        "entry": "process.py:process",
        "templates": [f"templates/{agent}.json"],
        "examples": examples,
    }
    readme = (
        f"# {name}\n\n{description}\n\nThe built-in `{agent}` agent of Agent Factory, published "
        f"by the marketplace itself.\n\n    agentfactory install {name}\n"
    )
    return {
        "agent.json": json.dumps(manifest, indent=2, sort_keys=True),
        f"templates/{agent}.json": json.dumps(template, indent=2, sort_keys=True),
        "process.py": source,
        "README.md": readme,
    }


def build_builtin_archive(agent: str) -> tuple[str, str, bytes]:
    """`(name, version, archive bytes)` of the built-in agent's package (deterministic)."""
    files = _package_files(agent)
    manifest = json.loads(files["agent.json"])
    with tempfile.TemporaryDirectory(prefix="af-builtin-") as tmp:
        root = Path(tmp)
        for rel, text in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text, encoding="utf-8")
        return manifest["name"], manifest["version"], build_archive(root)


def _published(registry: Registry, name: str) -> set[str]:
    try:
        return {r.version for r in registry.releases(name)}
    except NotFound:
        return set()


def publish_builtins(registry: Registry, home: Path) -> list[str]:
    """Publish every built-in agent not yet published; return `name==version` of new ones."""
    creds = _credentials(registry, home)
    if creds is None:
        return []
    done = []
    for agent in builtin_agents():
        try:
            name, version, archive = build_builtin_archive(agent)
            if version in _published(registry, name):
                continue
            digest = hashlib.sha256(archive).hexdigest()
            record = record_digest(open_archive(archive))
            signature = creds.key.sign_release(digest, name, version, record)
            registry.publish(creds.principal, archive, signature, creds.key.key_id)
        except RegistryError as exc:  # one bad built-in must not keep the server down
            log.warning("could not publish built-in agent %s: %s", agent, exc)
            continue
        done.append(f"{name}=={version}")
    return done
