"""Vetting runs a package's examples in the sandbox and reports each one."""

from __future__ import annotations

import pytest

from sandbox import Sandbox, SandboxLimits, TaskStatus
from sandbox.vetting import VettingReport, VettingStatus, vet
from tests.sandbox.factories import make_package

pytestmark = pytest.mark.sandbox


def test_passing_package_records_fuel_memory_and_time(sandbox: Sandbox) -> None:
    report = vet(make_package(), sandbox)
    assert report.status is VettingStatus.PASSED
    assert [e.name for e in report.examples] == ["two", "checks"]
    for example in report.examples:
        assert example.passed and example.fuel_used > 0 and example.duration_ms > 0
        assert example.memory_peak_bytes is not None and example.memory_peak_bytes > 0
    data = report.to_json()
    assert data["totals"]["passed"] == 2
    assert VettingReport.from_json(data).to_json() == data


def test_wrong_output_fails_with_the_reason(sandbox: Sandbox) -> None:
    package = make_package("def process(task):\n    return {'double': 0, 'label': 'x'}\n")
    report = vet(package, sandbox)
    assert report.status is VettingStatus.FAILED
    two, checks = report.examples
    assert not two.passed and two.failures[0] == "double: expected 4, found 0"
    assert "double: expected gte 10, found 0" in checks.failures


def test_crashing_or_looping_example_fails_with_its_status(sandbox: Sandbox) -> None:
    package = make_package(
        "def process(task):\n    if task['n'] == 5:\n        while True:\n            pass\n"
        "    raise KeyError('n')\n"
    )
    report = vet(package, sandbox, SandboxLimits(fuel=20_000_000))
    assert report.status is VettingStatus.FAILED
    assert [e.status for e in report.examples] == [TaskStatus.AGENT_ERROR, TaskStatus.OUT_OF_FUEL]
    assert report.examples[0].failures[0].startswith("agent_error: KeyError")


def test_package_without_examples_is_unvetted_not_passed(sandbox: Sandbox) -> None:
    report = vet(make_package(examples=[]), sandbox)
    assert report.status is VettingStatus.UNVETTED
    assert not report.passed and report.examples == ()


def test_multi_file_package_imports_its_own_modules(sandbox: Sandbox) -> None:
    source = "from helpers.maths import double\n\ndef process(task):\n" \
             "    return {'double': double(task['n']), 'label': f\"n={task['n']}\"}\n"
    package = make_package(
        source,
        extra_files={"helpers/__init__.py": "", "helpers/maths.py": "def double(n):\n"
                     "    return n * 2\n"},
    )
    assert vet(package, sandbox).status is VettingStatus.PASSED
