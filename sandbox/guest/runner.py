"""The generic sandbox runner: CPython code that runs *inside* the WebAssembly component.

Built once with componentize-py (`sandbox.build`), which snapshots the interpreter after this
module is imported. Invariants:

- Every allowed module (`allowlist.py`) is imported here at build time; they are the only
  standard-library modules in the snapshot. Agent code imports through `_guarded_import`, which
  refuses anything else with `ImportError: module 'x' is not available in the sandbox`.
- `agentfactory_guest` (this directory) is importable by agents too: its `complete` calls the
  host's `complete` import, the only way out of the sandbox (to the host's model gateway).
- Agent files never touch a filesystem: `load` receives their sources and serves them to the import
  system from memory (`_AgentFinder`), so the host gives the guest no directory at all.
- `time.sleep` and `select.*` raise: a blocking host call is interrupted neither by fuel nor by
  the epoch. (A determined agent gets around this; the host's process backstop does not care.)
- Agent output (`print`, `sys.stderr`) is captured in memory and capped; the process' real stdout
  is never written.
- `call` always returns one JSON outcome text and never raises: the host maps traps (fuel, epoch,
  aborts) itself. Outcome keys: status, value | error + traceback, stdout, memory_peak. A result
  nested deeper than 100 is refused before encoding; error and traceback texts are capped and
  made without trusting the agent's exception (its `__str__` may raise or exit).
- These guards are courtesy, not security: the agent can tamper with this interpreter, so the host
  re-checks every outcome (`sandbox.outcome`) and bounds every task in time (`sandbox.pool`).
"""

import builtins
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import linecache
import select
import sys
import time
import tracemalloc
import traceback

import agentfactory_guest  # noqa: F401 - snapshotted at build time, imported by agents
import wit_world
from allowlist import ALLOWED_MODULES, BUNDLED_SUBMODULES

for _name in ALLOWED_MODULES + BUNDLED_SUBMODULES:
    importlib.import_module(_name)

_HOST_MODULES = ("agentfactory_guest",)
_ALLOWED_TEXT = ", ".join(sorted(ALLOWED_MODULES + _HOST_MODULES))
_SLEEP_REFUSED = "sleeping and blocking waits are not available in the sandbox"


def _refuse_sleep(*args, **kwargs):
    raise PermissionError(_SLEEP_REFUSED)


# Blocking waits reach the host's WASI poll, which neither fuel nor the epoch can interrupt.
time.sleep = _refuse_sleep
for _name in ("select", "poll", "epoll", "kqueue", "devpoll"):
    if hasattr(select, _name):
        setattr(select, _name, _refuse_sleep)


def _no_filesystem(*args, **kwargs):
    raise PermissionError("the sandbox has no filesystem")


class _OutputLimit(BaseException):
    """Raised inside agent code when its captured output passes the cap (BaseException so that a
    broad `except Exception` in the agent does not swallow it)."""


class _Capture:
    """A text stream that keeps what the agent prints, up to `limit` characters."""

    def __init__(self, limit):
        self.limit = limit
        self.parts = []
        self.size = 0
        self.exceeded = False

    def write(self, text):
        text = str(text)
        self.size += len(text)
        if self.size > self.limit:
            self.exceeded = True
            raise _OutputLimit("output limit reached")
        self.parts.append(text)
        return len(text)

    def flush(self):
        pass

    def isatty(self):
        return False

    def getvalue(self):
        return "".join(self.parts)


def _allowed(name):
    if name in _HOST_MODULES:
        return True
    for allowed in ALLOWED_MODULES:
        if name == allowed or name.startswith(allowed + "."):
            return True
    return False


def _module_name(path):
    stem = path[:-3]
    if stem.endswith("/__init__"):
        return stem[: -len("/__init__")].replace("/", "."), True
    return stem.replace("/", "."), False


class _AgentFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves the agent's own `.py` files, from memory, to the import system."""

    def __init__(self, files, agent_builtins):
        self.modules = {}
        for path, source in files.items():
            if path.endswith(".py"):
                name, is_package = _module_name(path)
                self.modules[name] = (path, source, is_package)
                linecache.cache[path] = (len(source), None, source.splitlines(True), path)
        self.builtins = agent_builtins
        self.roots = {name.split(".")[0] for name in self.modules}

    def find_spec(self, fullname, path=None, target=None):
        found = self.modules.get(fullname)
        if found is None:
            return None
        spec = importlib.util.spec_from_loader(fullname, self, origin=found[0], is_package=found[2])
        spec.has_location = True
        return spec

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        path, source, _ = self.modules[module.__name__]
        module.__dict__["__builtins__"] = self.builtins
        module.__file__ = path
        exec(compile(source, path, "exec", dont_inherit=True), module.__dict__)


class _State:
    finder = None
    function = None
    max_output = 1 << 20
    trace_memory = False


def _guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
    if level == 0:
        root = name.split(".")[0]
        if not (root in _State.finder.roots or _allowed(name)):
            raise ImportError(
                f"module {name!r} is not available in the sandbox (allowed: {_ALLOWED_TEXT})",
                name=name,
            )
    return builtins.__import__(name, globals, locals, fromlist, level)


def _agent_builtins():
    table = dict(builtins.__dict__)
    table["__import__"] = _guarded_import
    table["open"] = _no_filesystem
    for name in ("breakpoint", "input", "help", "exit", "quit", "copyright", "credits", "license"):
        table.pop(name, None)
    return table


_ERROR_CAP = 2000
_TRACEBACK_CAP = 16000
_TRACEBACK_FRAMES = 50


def _safe_text(make, cap, tail=False):
    """`make()`'s text cut to `cap` characters, or a placeholder if making it fails in any way
    (an agent's exception can raise, loop or return megabytes from `__str__`)."""
    try:
        text = str(make())
    except BaseException as exc:  # noqa: BLE001 - agent code: anything may come out
        return f"<the error could not be shown: {type(exc).__name__}>"
    return text[-cap:] if tail else text[:cap]


def _traceback_text(exc):
    frames = traceback.extract_tb(exc.__traceback__)
    # Drop the runner's own frames so the traceback starts in agent code; keep the innermost ones.
    keep = [frame for frame in frames if frame.filename in _State.finder.modules_paths]
    lines = ["Traceback (most recent call last):\n"] if keep else []
    if len(keep) > _TRACEBACK_FRAMES:
        lines.append(f"  ... {len(keep) - _TRACEBACK_FRAMES} frames not shown ...\n")
        keep = keep[-_TRACEBACK_FRAMES:]
    lines += traceback.format_list(keep)
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines)


def _error(status, exc, stdout=""):
    """One JSON outcome for `exc`; never raises, whatever the exception does when shown."""
    message = _safe_text(
        lambda: "".join(traceback.format_exception_only(type(exc), exc)).strip(), _ERROR_CAP
    )
    trace = _safe_text(lambda: _traceback_text(exc), _TRACEBACK_CAP, tail=True)
    outcome = {"status": status, "error": message, "traceback": trace, "stdout": stdout}
    return json.dumps(outcome)


_MAX_DEPTH = 100
_CONTAINERS = (dict, list, tuple)


def _too_deep(value):
    """Whether `value` nests containers deeper than `_MAX_DEPTH`, found without recursion (the
    guest's JSON encoder would overflow the wasm stack first, killing the instance)."""
    if not isinstance(value, _CONTAINERS):
        return False
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > _MAX_DEPTH:
            return True
        children = item.values() if isinstance(item, dict) else item
        pending.extend([(child, depth + 1) for child in children if isinstance(child, _CONTAINERS)])
    return False


class WitWorld(wit_world.WitWorld):
    def load(self, files, entry, options):
        opts = json.loads(options)
        _State.max_output = int(opts.get("max_output", _State.max_output))
        _State.trace_memory = bool(opts.get("trace_memory", False))
        finder = _AgentFinder(json.loads(files), _agent_builtins())
        finder.modules_paths = {path for path, _, _ in finder.modules.values()}
        _State.finder = finder
        sys.meta_path.insert(0, finder)
        path, _, function = entry.partition(":")
        try:
            module_name, _ = _module_name(path)
            if module_name not in finder.modules:
                raise ImportError(f"entry file {path!r} is not among the agent's files")
            module = importlib.import_module(module_name)
            target = getattr(module, function or "process", None)
            if not callable(target):
                raise AttributeError(f"{path} has no function {function!r}")
            _State.function = target
        except MemoryError as exc:
            return _error("out_of_memory", exc)
        except BaseException as exc:
            return _error("agent_error", exc)
        return ""

    def call(self, task):
        capture = _Capture(_State.max_output)
        saved = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = capture
        if _State.trace_memory:
            tracemalloc.start()
            tracemalloc.reset_peak()
        try:
            value = _State.function(json.loads(task))
        except _OutputLimit:
            return json.dumps({"status": "output_too_large", "error": "printed output too large"})
        except MemoryError as exc:
            return _error("out_of_memory", exc)
        except BaseException as exc:
            if capture.exceeded:
                return json.dumps({"status": "output_too_large", "error": "printed output too large"})
            return _error("agent_error", exc, capture.getvalue())
        finally:
            sys.stdout, sys.stderr = saved
            peak = 0
            if _State.trace_memory:
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
        if capture.exceeded:
            return json.dumps({"status": "output_too_large", "error": "printed output too large"})
        if _too_deep(value):
            return json.dumps({"status": "bad_output", "error": f"result is nested deeper than {_MAX_DEPTH}"})
        try:
            text = json.dumps(value, allow_nan=False, separators=(",", ":"))
        except BaseException as exc:  # noqa: BLE001 - a result's own methods may raise anything
            kind = _safe_text(lambda: type(value).__name__, 100)
            reason = _safe_text(lambda: exc, 500)
            return json.dumps({"status": "bad_output", "error": f"result ({kind}) is not JSON: {reason}"})
        if len(text) > _State.max_output:
            size = len(text)
            return json.dumps({"status": "output_too_large", "error": f"result is {size} characters"})
        head = json.dumps({"status": "ok", "stdout": capture.getvalue(), "memory_peak": peak})
        return head[:-1] + ',"value":' + text + "}"
