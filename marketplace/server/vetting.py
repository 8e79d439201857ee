"""The marketplace's vetter: a package's own examples run in the sandbox before it is published.

The registry stays independent of the sandbox; this adapter is what joins them. A package whose
examples fail is refused (`registry.errors.VettingFailed`, naming each failing example); one
without examples is published as "unvetted"; the sandbox's full report is stored on the release
and shown on its page. Installers vet again on their own machine: this report informs, it is
not trusted by them.
"""

from __future__ import annotations

from registry.archive import Package
from registry.publish import Vetter, VettingOutcome
from sandbox import Sandbox, SandboxLimits
from sandbox.vetting import VettingReport, vet


def outcome_of(report: VettingReport) -> VettingOutcome:
    """The registry's view of a sandbox report: status, full JSON, one line per failure."""
    failures = tuple(
        f"example {example.name!r}: {'; '.join(example.failures) or example.status.value}"
        for example in report.examples
        if not example.passed
    )
    return VettingOutcome(report.status.value, report.to_json(), failures)


def publish_vetter(
    sandbox: Sandbox | None = None, limits: SandboxLimits | None = None
) -> Vetter:
    """A `Vetter` running each package's examples in `sandbox` (one shared by all threads)."""
    shared = sandbox or Sandbox()

    def vet_package(package: Package) -> VettingOutcome:
        return outcome_of(vet(package, shared, limits))

    return vet_package

