"""Vet a package: run every example of its manifest in the sandbox and compare the outputs.

Invariants: each example runs in a fresh instance under the given limits, with memory tracing
on; a package without examples is `unvetted`, never `passed`; `passed` means every example
produced output that met its `expected` value and every check. The report is a typed record that
round-trips through `to_json` / `from_json`, so installers can store it next to the package.

With a `budget_s` (the marketplace gives one per upload), the examples run one after another
until the budget is spent: an example never gets more time than is left (its deadline is cut,
and its failure says so), and the examples after that are not run at all (`skipped`, each a
failure naming the budget), so the whole vetting ends within the budget plus the sandbox's kill
grace. Comparing outputs runs in the host under `sandbox.checks`' own bounds.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from sandbox.checks import evaluate, pattern_problem
from sandbox.errors import InvalidAgentSource, VettingError
from sandbox.limits import SandboxLimits
from sandbox.results import AgentSource, TaskStatus
from sandbox.runtime import Sandbox

if TYPE_CHECKING:
    from registry.archive import Package
    from registry.manifest import Manifest

# Less time than this left of the budget is not worth starting an example for.
MIN_SLICE_S = 0.05


class VettingStatus(enum.StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    UNVETTED = "unvetted"


@dataclass(frozen=True)
class ExampleReport:
    name: str
    passed: bool
    status: TaskStatus
    failures: tuple[str, ...] = ()
    fuel_used: int = 0
    memory_peak_bytes: int | None = None
    duration_ms: float = 0.0
    skipped: bool = False
    """Not run: the upload's vetting budget was spent before its turn."""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "status": self.status.value,
            "failures": list(self.failures),
            "fuel_used": self.fuel_used,
            "memory_peak_bytes": self.memory_peak_bytes,
            "duration_ms": round(self.duration_ms, 3),
            "skipped": self.skipped,
        }


@dataclass(frozen=True)
class VettingReport:
    package: str
    version: str
    digest: str
    status: VettingStatus
    examples: tuple[ExampleReport, ...] = field(default_factory=tuple)
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    budget_s: float | None = None
    """The wall-clock budget of the whole vetting, when it had one."""

    @property
    def passed(self) -> bool:
        return self.status is VettingStatus.PASSED

    @property
    def total_fuel(self) -> int:
        return sum(e.fuel_used for e in self.examples)

    @property
    def total_ms(self) -> float:
        return sum(e.duration_ms for e in self.examples)

    @property
    def peak_memory_bytes(self) -> int | None:
        peaks = [e.memory_peak_bytes for e in self.examples if e.memory_peak_bytes is not None]
        return max(peaks) if peaks else None

    def to_json(self) -> dict[str, Any]:
        return {
            "package": self.package,
            "version": self.version,
            "digest": self.digest,
            "status": self.status.value,
            "examples": [e.to_json() for e in self.examples],
            "totals": {
                "examples": len(self.examples),
                "passed": sum(e.passed for e in self.examples),
                "skipped": sum(e.skipped for e in self.examples),
                "fuel_used": self.total_fuel,
                "duration_ms": round(self.total_ms, 3),
                "memory_peak_bytes": self.peak_memory_bytes,
            },
            "limits": {
                "fuel": self.limits.fuel,
                "memory_bytes": self.limits.memory_bytes,
                "timeout_s": self.limits.timeout_s,
                "max_output_bytes": self.limits.max_output_bytes,
            },
            "budget_s": self.budget_s,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VettingReport:
        examples = tuple(
            ExampleReport(
                name=e["name"],
                passed=bool(e["passed"]),
                status=TaskStatus(e["status"]),
                failures=tuple(e.get("failures", ())),
                fuel_used=int(e.get("fuel_used", 0)),
                memory_peak_bytes=e.get("memory_peak_bytes"),
                duration_ms=float(e.get("duration_ms", 0.0)),
                skipped=bool(e.get("skipped", False)),
            )
            for e in data.get("examples", ())
        )
        return cls(
            package=data["package"],
            version=data["version"],
            digest=data.get("digest", ""),
            status=VettingStatus(data["status"]),
            examples=examples,
            limits=SandboxLimits(**data["limits"]) if "limits" in data else SandboxLimits(),
            budget_s=data.get("budget_s"),
        )


def package_source(package: Package) -> AgentSource:
    """The package's Python files and entry, as the sandbox takes them."""
    label = f"{package.manifest.name}@{package.manifest.version}"
    try:
        return AgentSource(package.source_files(), package.manifest.entry)
    except (InvalidAgentSource, UnicodeDecodeError) as exc:
        raise VettingError(label, str(exc)) from exc


def pattern_errors(manifest: Manifest) -> list[tuple[str, str]]:
    """Every `matches` check whose pattern cannot run (not RE2 syntax, too long, not a string),
    as `(field, message)` pairs naming the example: the marketplace refuses these at publish."""
    errors = []
    for index, example in enumerate(manifest.examples):
        for number, check in enumerate(example.checks):
            problem = pattern_problem(check.value) if check.op == "matches" else None
            if problem is not None:
                errors.append((f"examples.{index}.checks.{number}.value",
                               f"example {example.name!r}: {problem}"))
    return errors


def _skipped(name: str, budget_s: float) -> ExampleReport:
    return ExampleReport(
        name, passed=False, status=TaskStatus.TIMEOUT, skipped=True,
        failures=(f"not run: the upload's vetting budget of {budget_s:g} s was spent",),
    )


def vet(
    package: Package, sandbox: Sandbox | None = None, limits: SandboxLimits | None = None,
    *, budget_s: float | None = None, clock: Callable[[], float] = time.monotonic,
) -> VettingReport:
    """Run `package`'s examples in the sandbox and report how each fared, all within `budget_s`
    seconds of `clock` when given (see the module's docstring)."""
    manifest = package.manifest
    box = sandbox or Sandbox()
    limits = limits or box.limits
    # A package of workflows has no code, and no examples (`registry.archive`): nothing to load.
    source = package_source(package) if manifest.examples else None
    deadline = None if budget_s is None else clock() + budget_s
    reports = []
    for example in manifest.examples:
        left = None if deadline is None else deadline - clock()
        if left is not None and budget_s is not None and left < MIN_SLICE_S:
            reports.append(_skipped(example.name, budget_s))
            continue
        cut = left is not None and left < limits.timeout_s
        run_limits = replace(limits, timeout_s=left) if cut and left is not None else limits
        assert source is not None
        [result] = box.run(source, [example.input], limits=run_limits, trace_memory=True)
        if result.ok:
            failures = tuple(evaluate(example.expected, example.checks, result.value))
        else:
            failures = (f"{result.status.value}: {result.error}",)
            if cut and result.status is TaskStatus.TIMEOUT:
                failures = (f"{failures[0]} (cut to the {run_limits.timeout_s:.2f} s left of "
                            f"the upload's vetting budget of {budget_s:g} s)",)
        reports.append(
            ExampleReport(
                name=example.name,
                passed=not failures,
                status=result.status,
                failures=failures,
                fuel_used=result.fuel_used,
                memory_peak_bytes=result.memory_peak_bytes,
                duration_ms=round(result.duration_ms, 3),
            )
        )
    if not reports:
        status = VettingStatus.UNVETTED
    elif all(r.passed for r in reports):
        status = VettingStatus.PASSED
    else:
        status = VettingStatus.FAILED
    return VettingReport(
        manifest.name, manifest.version, package.digest, status, tuple(reports), limits, budget_s
    )
