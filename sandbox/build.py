"""Build, compile and cache the generic runner component.

Invariants:

- The artifact on disk is a *compiled* component (`Component.serialize()`), named by a key that
  hashes the wasmtime and componentize-py versions, the engine settings and every guest source
  file; anything that would make deserialization fail or the guest differ changes the name.
- Artifacts are written to a temporary file in the cache directory and renamed into place, under
  an exclusive file lock: a reader sees a whole artifact or none, and two processes never build
  the same key at once (the second waits, then loads what the first wrote).
- Building needs no network: componentize-py ships CPython and its standard library.
- An artifact that fails to deserialize (truncated, foreign) is rebuilt, never trusted.
- Progress is one `Step` line per step, said when the step starts. The two long steps
  (componentize, compile) are opaque calls, so each `Step` carries how long it took on this
  machine last time (`timings.json` in the cache directory), else a typical figure: a caller can
  show an honest elapsed-time indicator. The compile runs in a worker thread so that Ctrl-C
  stops the wait at once instead of after the native call returns.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any, TypeVar

import wasmtime
from wasmtime import component as wasm_component

from sandbox.errors import RunnerBuildError

Progress = Callable[[str], None]
"""Receives one human-readable line per build step (a `Step`), when the step starts."""

TYPICAL_SECONDS: dict[str, float] = {"componentize": 15.0, "compile": 45.0}
"""How long the long steps take on a modest 2-core machine, used before any build was timed."""

T = TypeVar("T")


class Step(str):
    """A progress line that also says how long its step is expected to take (None: short)."""

    expected_s: float | None

    def __new__(cls, text: str, expected_s: float | None = None) -> Step:
        line = super().__new__(cls, text)
        line.expected_s = expected_s
        return line

GUEST_DIR = Path(__file__).resolve().parent / "guest"
ENGINE_SETTINGS: dict[str, Any] = {"consume_fuel": True, "epoch_interruption": True}
"""Settings baked into compiled code; part of the cache key."""


def cache_dir() -> Path:
    """`sandbox/` under the project's cache directory (`core.paths.cache_home`)."""
    from core.paths import cache_home

    return cache_home() / "sandbox"


def guest_files() -> dict[str, bytes]:
    """The runner's sources (`*.py`, `*.wit`) by file name."""
    return {
        path.name: path.read_bytes()
        for path in sorted(GUEST_DIR.iterdir())
        if path.suffix in (".py", ".wit") and path.is_file()
    }


def runner_key() -> str:
    """Hex key of the compiled runner for this machine's versions, settings and sources."""
    digest = hashlib.sha256()
    header = {
        "wasmtime": dist_version("wasmtime"),
        "componentize-py": dist_version("componentize-py"),
        "engine": ENGINE_SETTINGS,
        "platform": sys.platform,
    }
    digest.update(json.dumps(header, sort_keys=True).encode())
    for name, data in guest_files().items():
        digest.update(f"\0{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()[:32]


def artifact_path(key: str | None = None) -> Path:
    return cache_dir() / f"runner-{key or runner_key()}.cwasm"


def _timings_path() -> Path:
    return cache_dir() / "timings.json"


def expected_seconds(step: str) -> float:
    """How long `step` took in the last build on this machine, else its typical duration."""
    try:
        recorded = json.loads(_timings_path().read_text(encoding="utf-8"))
        return float(recorded[step])
    except (OSError, ValueError, KeyError, TypeError):
        return TYPICAL_SECONDS[step]


def _record_timings(timings: dict[str, float]) -> None:
    with contextlib.suppress(OSError):  # a timing hint is never worth failing a build for
        _timings_path().write_text(json.dumps(timings, sort_keys=True), encoding="utf-8")


def _in_thread(work: Callable[[], T]) -> T:
    """`work()` in a daemon thread; the caller's wait stays interruptible by Ctrl-C."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            outcome.append(work())
        except BaseException as exc:  # re-raised in the caller's thread below
            failure.append(exc)

    worker = threading.Thread(target=target, name="sandbox-compile", daemon=True)
    worker.start()
    worker.join()  # interruptible: Ctrl-C raises here while the native call runs on
    if failure:
        raise failure[0]
    return outcome[0]


def make_engine() -> wasmtime.Engine:
    config = wasmtime.Config()
    config.consume_fuel = ENGINE_SETTINGS["consume_fuel"]
    config.epoch_interruption = ENGINE_SETTINGS["epoch_interruption"]
    return wasmtime.Engine(config)


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `lock_path` (blocking) for the duration of the block."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as handle:
        if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
            import msvcrt

            msvcrt.locking(handle.fileno(), msvcrt.LK_LOCK, 1)
            try:
                yield
            finally:
                msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


_COMPONENTIZE = """
import sys, componentize_py
src, out = sys.argv[1], sys.argv[2]
componentize_py.componentize(
    wit_path=[src + "/runner.wit"], worlds=["runner"], features=[], all_features=False,
    world_module=None, python_path=[src], module_worlds=[], app_name="runner",
    output_path=out, stub_wasi=False, import_interface_names=[], export_interface_names=[],
    full_names=False, intersect_world=None)
"""


def _componentize(workdir: Path) -> bytes:
    """Run componentize-py on a private copy of the guest sources; return the component bytes."""
    src = workdir / "guest"
    src.mkdir()
    for name, data in guest_files().items():
        (src / name).write_bytes(data)
    out = workdir / "runner.wasm"
    # A child process: componentize-py is native code that prints and may abort on bad input;
    # neither must reach the caller's process.
    proc = subprocess.run(
        [sys.executable, "-c", _COMPONENTIZE, str(src), str(out)],
        capture_output=True,
        text=True,
        cwd=workdir,
        check=False,
    )
    if proc.returncode != 0 or not out.exists():
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise RunnerBuildError("componentizing the runner", detail[-1] if detail else "no output")
    return out.read_bytes()


def _try_load(engine: wasmtime.Engine, path: Path) -> wasm_component.Component | None:
    if not path.is_file():
        return None
    try:
        return wasm_component.Component.deserialize_file(engine, str(path))
    except wasmtime.WasmtimeError:
        return None


def load_or_build(
    engine: wasmtime.Engine, progress: Progress | None = None, *, force: bool = False
) -> wasm_component.Component:
    """The compiled runner for `engine`: loaded from the cache, or built, compiled and cached."""
    say = progress or (lambda _line: None)
    path = artifact_path()
    if not force and (found := _try_load(engine, path)) is not None:
        return found
    with _exclusive(path.parent / "build.lock"):
        if not force and (found := _try_load(engine, path)) is not None:
            return found  # another process built it while we waited for the lock
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="agentfactory-runner-") as tmp:
            say(Step("sandbox: building the runner component with componentize-py "
                     "(first use only)", expected_seconds("componentize")))
            wasm = _componentize(Path(tmp))
            componentized = time.perf_counter()
            say(Step(f"sandbox: compiling the runner ({len(wasm) / 1e6:.1f} MB) with Wasmtime",
                     expected_seconds("compile")))
            try:
                compiled = _in_thread(lambda: wasm_component.Component(engine, wasm))
            except wasmtime.WasmtimeError as exc:
                raise RunnerBuildError("compiling the runner", str(exc).strip()) from exc
            compiled_at = time.perf_counter()
        _record_timings({"componentize": round(componentized - started, 1),
                         "compile": round(compiled_at - componentized, 1)})
        say(Step(f"sandbox: caching the compiled runner in {path.parent}"))
        fd, tmp_name = tempfile.mkstemp(prefix=".runner-", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(compiled.serialize())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
            raise
        say(Step(f"sandbox: runner ready in {time.perf_counter() - started:.1f} s"))
        loaded = _try_load(engine, path)
        if loaded is None:
            raise RunnerBuildError("loading the cached runner", f"{path} does not deserialize")
        return loaded


def clear_stale(keep: str | None = None) -> list[Path]:
    """Delete cached runners other than the current key; return what was removed."""
    current = artifact_path(keep).name
    removed = []
    directory = cache_dir()
    if directory.is_dir():
        for path in directory.glob("runner-*.cwasm"):
            if path.name != current:
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed

