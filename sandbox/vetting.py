"""Vet a package: run every example of its manifest in the sandbox and compare the outputs.

Invariants: each example runs in a fresh instance under the given limits, with memory tracing
on; a package without examples is `unvetted`, never `passed`; `passed` means every example
produced output that met its `expected` value and every check. The report is a typed record that
round-trips through `to_json` / `from_json`, so installers can store it next to the package.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sandbox.checks import evaluate
from sandbox.errors import InvalidAgentSource, VettingError
from sandbox.limits import SandboxLimits
from sandbox.results import AgentSource, TaskStatus
from sandbox.runtime import Sandbox

if TYPE_CHECKING:
    from registry.archive import Package


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

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "status": self.status.value,
            "failures": list(self.failures),
            "fuel_used": self.fuel_used,
            "memory_peak_bytes": self.memory_peak_bytes,
            "duration_ms": round(self.duration_ms, 3),
        }


@dataclass(frozen=True)
class VettingReport:
    package: str
    version: str
    digest: str
    status: VettingStatus
    examples: tuple[ExampleReport, ...] = field(default_factory=tuple)
    limits: SandboxLimits = field(default_factory=SandboxLimits)

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
        )


def package_source(package: Package) -> AgentSource:
    """The package's Python files and entry, as the sandbox takes them."""
    label = f"{package.manifest.name}@{package.manifest.version}"
    try:
        return AgentSource(package.source_files(), package.manifest.entry)
    except (InvalidAgentSource, UnicodeDecodeError) as exc:
        raise VettingError(label, str(exc)) from exc


def vet(
    package: Package, sandbox: Sandbox | None = None, limits: SandboxLimits | None = None
) -> VettingReport:
    """Run `package`'s examples in the sandbox and report how each fared."""
    manifest = package.manifest
    box = sandbox or Sandbox()
    limits = limits or box.limits
    source = package_source(package)
    reports = []
    if manifest.examples:
        results = box.run(
            source, [example.input for example in manifest.examples],
            limits=limits, trace_memory=True,
        )
        for example, result in zip(manifest.examples, results, strict=True):
            if result.ok:
                failures = tuple(evaluate(example.expected, example.checks, result.value))
            else:
                failures = (f"{result.status.value}: {result.error}",)
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
        manifest.name, manifest.version, package.digest, status, tuple(reports), limits
    )
