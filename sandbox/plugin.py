"""A community package as a factory plugin whose `process()` runs in the sandbox.

`SandboxedAgentPlugin` contributes the package's templates (their `implementation` defaults to
the package name) and implements `agentfactory_process` for that implementation. Invariants:

- Whether the package runs sandboxed is decided once, at construction, from the operator's
  policy and the package's risk (`sandbox.policy`); `sandboxed` and `risk` say what was decided.
- Sandboxed, every task runs in a fresh instance: no state survives between tasks or agents.
- A sandbox failure surfaces from `agent.process()` as a typed `sandbox.errors.AgentRunError`,
  and a result that is not a JSON object as `AgentBadOutput`.
- Sandboxed code reaches language models only through the host (`sandbox.host_models`): a
  package whose manifest declares `models` gets the caller's gateway, limited to those models
  and its template's `model`; any other package gets `model_not_declared`. A task whose model
  call passed a budget ends `budget_exceeded` (`AgentBudgetExceeded`).
- Natively (policy `never`, or `high-risk` for a low-risk package), the package's modules are
  executed once in private module objects that are never placed in `sys.modules` (absolute
  imports between them work; relative ones do not).
"""

from __future__ import annotations

import builtins
import contextvars
import importlib.abc
import importlib.util
import threading
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from core.hookspecs import hookimpl
from registry.names import normalize_name
from sandbox.errors import AgentBadOutput, AgentFailed
from sandbox.host_models import ModelHost, NotDeclared
from sandbox.limits import SandboxLimits
from sandbox.policy import RiskAssessment, SandboxPolicy, assess, must_sandbox
from sandbox.results import AgentSource, TaskResult, TaskStatus
from sandbox.runtime import Sandbox
from sandbox.vetting import VettingReport, package_source

if TYPE_CHECKING:
    from core.agent import Agent
    from registry.archive import Package


LAST_RESULT: contextvars.ContextVar[TaskResult | None] = contextvars.ContextVar(
    "sandbox_last_result", default=None
)
"""The last sandboxed task's result in this context, ok or not: callers that record usage (fuel,
memory, time; `runs.executor`) reset it before `agent.process()` and read it after."""


class SandboxedAgentPlugin:
    """Register with `AgentFactory.register_plugin(plugin, name=plugin.name)`."""

    def __init__(
        self,
        package: Package,
        sandbox: Sandbox | None = None,
        policy: str | SandboxPolicy = SandboxPolicy.ALWAYS,
        report: VettingReport | None = None,
        *,
        publisher_verified: bool = False,
        allowed_tools: Iterable[str] = (),
        limits: SandboxLimits | None = None,
    ) -> None:
        self.package = package
        # The registry defaults package templates' implementation to the normalized name.
        self.name = normalize_name(package.manifest.name)
        self.sandbox = sandbox or Sandbox()
        self.limits = limits or self.sandbox.limits
        self.report = report
        self.policy = SandboxPolicy.parse(policy)
        self.risk: RiskAssessment = assess(
            package, report, publisher_verified=publisher_verified, allowed_tools=allowed_tools
        )
        self.sandboxed = must_sandbox(self.policy, self.risk)
        self.source: AgentSource = package_source(package)
        self._native: _NativeEntry | None = None
        self._native_lock = threading.Lock()

    @hookimpl
    def agentfactory_templates(self) -> Sequence[Mapping[str, Any]]:
        documents = []
        for template in self.package.templates:
            document = template.model_dump(mode="json", exclude_none=True, by_alias=True)
            document.setdefault("implementation", self.name)
            documents.append(document)
        return documents

    @hookimpl
    def agentfactory_implementations(self) -> Sequence[str]:
        return [self.name]

    @hookimpl
    def agentfactory_process(self, agent: Agent, task: dict[str, Any]) -> dict[str, Any] | None:
        if agent.implementation != self.name:
            return None
        if self.sandboxed:
            host = self._model_host(agent)
            result = self.sandbox.run_one(self.source, task, limits=self.limits, host=host)
            result = _with_budget(result, host)
            LAST_RESULT.set(result)
            value = result.raise_for_status(f"agent {agent.name!r}")
        else:
            value = self._run_native(agent, task)
        if not isinstance(value, dict):
            kind = type(value).__name__
            bad = TaskResult(TaskStatus.BAD_OUTPUT, error=f"result is a {kind}, not an object")
            raise AgentBadOutput(bad, f"agent {agent.name!r}")
        return value

    def _model_host(self, agent: Agent) -> ModelHost:
        """The host of the guest's model calls for one task (`sandbox.host_models`)."""
        declared = self.package.manifest.models
        if not declared:
            return NotDeclared(self.package.manifest.name)
        from sandbox.host_models import gateway_host

        return gateway_host(declared, agent.template)

    def _run_native(self, agent: Agent, task: dict[str, Any]) -> Any:
        with self._native_lock:
            if self._native is None:
                self._native = _NativeEntry(self.source)
        try:
            return self._native.function(task)
        except Exception as exc:  # the agent's own error, typed like the sandbox's
            failed = TaskResult(TaskStatus.AGENT_ERROR, error=f"{type(exc).__name__}: {exc}")
            raise AgentFailed(failed, f"agent {agent.name!r}") from exc


def _with_budget(result: TaskResult, host: ModelHost) -> TaskResult:
    """`result`, unless a model call of the task passed a budget: then the task is
    `budget_exceeded`, whatever the guest did with the refusal. Only the host says so."""
    from sandbox.host_models import GatewayHost

    failure = host.failure if isinstance(host, GatewayHost) else None
    if failure is not None:
        return replace(result, status=TaskStatus.BUDGET_EXCEEDED, value=None,
                       error=str(failure), traceback="")
    if result.status is TaskStatus.BUDGET_EXCEEDED:  # claimed by the guest, not seen here
        return replace(result, status=TaskStatus.BAD_OUTPUT,
                       error="the guest reported a budget it never passed")
    return result


class _NativeEntry(importlib.abc.Loader):
    """The package's modules executed on the host, resolved among themselves by name."""

    def __init__(self, source: AgentSource) -> None:
        self.sources: dict[str, tuple[str, str, bool]] = {}
        for path, text in source.files.items():
            stem = path[:-3]
            is_package = stem.endswith("/__init__")
            name = stem.removesuffix("/__init__").replace("/", ".")
            self.sources[name] = (path, text, is_package)
        self.modules: dict[str, types.ModuleType] = {}
        path, _, function = source.entry.partition(":")
        entry = self._load(path[:-3].removesuffix("/__init__").replace("/", "."))
        self.function: Callable[[Any], Any] = getattr(entry, function)

    def _load(self, name: str) -> types.ModuleType:
        if name in self.modules:
            return self.modules[name]
        path, text, is_package = self.sources[name]
        spec = importlib.util.spec_from_loader(name, self, origin=path, is_package=is_package)
        assert spec is not None
        module = importlib.util.module_from_spec(spec)
        self.modules[name] = module
        namespace = module.__dict__
        table = dict(vars(builtins))
        table["__import__"] = self._import  # sibling modules resolve here, not in sys.modules
        namespace["__builtins__"] = table
        exec(compile(text, path, "exec", dont_inherit=True), namespace)
        return module

    def _import(
        self, name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0
    ) -> types.ModuleType:
        if level == 0 and name.split(".")[0] in {n.split(".")[0] for n in self.sources}:
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):
                self._load(".".join(parts[:depth]))
            for item in fromlist or ():
                if f"{name}.{item}" in self.sources:
                    self._load(f"{name}.{item}")
            return self.modules[name if fromlist else parts[0]]
        return __import__(name, globals, locals, fromlist, level)

    def create_module(self, spec: Any) -> None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:  # pragma: no cover - unused
        raise ImportError(module.__name__)

