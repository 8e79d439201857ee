"""The developer scripts behave for someone who works inside the checkout.

`scripts/test` lints and type-checks the project's own folders only (a scratch agent folder in
the checkout must not fail the suite), and stops the PostgreSQL server it started. The second
part runs the real `scripts/test` and `scripts/pg` in a copy of `scripts/` next to a stand-in
`.venv` whose ruff, mypy and pytest do nothing but report; it needs root and Debian's PostgreSQL,
and skips without them.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUFF = Path(sys.executable).parent / "ruff"


def own_folders() -> set[str]:
    """The installed packages (setuptools' `packages.find` include) plus tests and benchmarks."""
    find = tool_config()["setuptools"]["packages"]
    assert isinstance(find, dict)
    packages = find["find"]["include"]
    assert isinstance(packages, list)
    return {str(p).rstrip("*") for p in packages} | {"tests", "benchmarks"}


def tool_config() -> dict[str, dict[str, object]]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        tool: dict[str, dict[str, object]] = tomllib.load(f)["tool"]
    return tool


def test_ruff_and_mypy_check_the_same_own_folders() -> None:
    tool = tool_config()
    ruff_include = tool["ruff"]["include"]
    mypy_files = tool["mypy"]["files"]
    assert isinstance(ruff_include, list) and isinstance(mypy_files, list)
    ruff_folders = {p.split("/")[0] for p in ruff_include if p.endswith("**/*.py")}
    assert ruff_folders == set(mypy_files) == own_folders()


def test_ruff_ignores_a_scratch_agent_folder_in_the_checkout(tmp_path: Path) -> None:
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "ok.py").write_text("X = 1\n")
    (tmp_path / "my-agent").mkdir()
    (tmp_path / "my-agent" / "process.py").write_text("import os\n")  # unused import: F401
    checked = subprocess.run(
        [str(RUFF), "check", "--no-cache"], cwd=tmp_path, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout
    listed = subprocess.run(
        [str(RUFF), "check", "--no-cache", "--show-files"],
        cwd=tmp_path, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "core/ok.py" in listed.stdout
    assert "my-agent" not in listed.stdout


def test_scripts_test_lints_with_the_configured_file_lists() -> None:
    script = (ROOT / "scripts" / "test").read_text()
    assert "ruff check --quiet ." not in script
    # No path arguments (redirections of lock descriptors aside): pyproject's lists decide.
    assert re.search(r"^\.venv/bin/ruff check --quiet( \d>&-)*$", script, re.MULTILINE)
    assert re.search(r"^\.venv/bin/mypy( \d>&-)*$", script, re.MULTILINE)


# --- PostgreSQL lifecycle -------------------------------------------------------------------------

FAKE_PYTHON = """#!/bin/bash
# `python -m pip ...` does nothing; `python -m pytest` reports what it was given.
if [ "$2" = pytest ]; then
    echo "pytest saw ${AGENTFACTORY_TEST_PG_URL:-no url}"
    exit "${FAKE_PYTEST_STATUS:-0}"
fi
"""


def have_postgresql() -> bool:
    return os.geteuid() == 0 and any(Path("/usr/lib/postgresql").glob("*/bin/initdb"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def checkout(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A copy of scripts/ with a stand-in .venv, and a private PostgreSQL location and port."""
    work = tmp_path / "work"
    shutil.copytree(ROOT / "scripts", work / "scripts", ignore=shutil.ignore_patterns("services"))
    venv_bin = work / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").write_text(FAKE_PYTHON)
    for tool in ("ruff", "mypy"):
        (venv_bin / tool).write_text("#!/bin/bash\nexit 0\n")
    for exe in venv_bin.iterdir():
        exe.chmod(0o755)
    # The server runs as the postgres user, which cannot enter pytest's private tmp_path.
    pg_parent = Path(tempfile.mkdtemp(prefix="agentfactory-test-pg-"))
    pg_parent.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTFACTORY_TEST_PG")}
    env.update(
        AGENTFACTORY_PG_DIR=str(pg_parent / "pg"),
        AGENTFACTORY_PG_PORT=str(free_port()),
        CI="",
    )
    env["WORK"] = str(work)
    yield env
    subprocess.run([str(work / "scripts" / "pg"), "stop"], env=env, capture_output=True)
    shutil.rmtree(pg_parent)


def run(env: dict[str, str], *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [f"{env['WORK']}/scripts/{args[0]}", *args[1:]],
        env={**env, **extra}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def pg_running(env: dict[str, str]) -> bool:
    return run(env, "pg", "status").returncode == 0


needs_postgresql = pytest.mark.skipif(
    not have_postgresql(), reason="needs root and Debian's postgresql"
)


@needs_postgresql
def test_scripts_test_stops_the_server_it_started_and_keeps_pytests_status(
    checkout: dict[str, str],
) -> None:
    assert not pg_running(checkout)
    result = run(checkout, "test", FAKE_PYTEST_STATUS="3")
    assert "pytest saw postgresql+psycopg://" in result.stdout
    assert result.returncode == 3
    assert not pg_running(checkout)


@needs_postgresql
def test_scripts_test_leaves_a_server_it_did_not_start(checkout: dict[str, str]) -> None:
    assert run(checkout, "pg", "start").returncode == 0
    result = run(checkout, "test", FAKE_PYTEST_STATUS="5")
    assert result.returncode == 1
    assert "collected no tests" in result.stderr
    assert pg_running(checkout)


def test_scripts_test_uses_a_given_url_and_starts_nothing(checkout: dict[str, str]) -> None:
    result = run(checkout, "test", AGENTFACTORY_TEST_PG_URL="postgresql+psycopg://elsewhere/db")
    assert result.returncode == 0
    assert "pytest saw postgresql+psycopg://elsewhere/db" in result.stdout
    assert not Path(checkout["AGENTFACTORY_PG_DIR"]).exists()
