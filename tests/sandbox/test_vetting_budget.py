"""Vetting within a budget: examples run until the upload's time is spent, then none.

Time comes from an injected clock that the test drives, so nothing here depends on how fast
the machine is: each reading of the clock advances it by one "second".
"""

from __future__ import annotations

import itertools

import pytest

from registry.manifest import parse_manifest
from sandbox import Sandbox, SandboxLimits, TaskStatus
from sandbox.vetting import VettingReport, VettingStatus, pattern_errors, vet
from tests.sandbox.factories import make_package

pytestmark = pytest.mark.sandbox

EXAMPLES = [{"name": f"e{k}", "input": {"n": k}, "expected": {"double": 2 * k, "label": f"n={k}"}}
            for k in range(6)]


def ticking() -> itertools.count[float]:
    return itertools.count(0.0, 1.0)


def test_examples_after_the_budget_are_not_run_and_fail_the_package(sandbox: Sandbox) -> None:
    clock = ticking()
    report = vet(make_package(examples=EXAMPLES), sandbox, budget_s=3.5,
                 clock=lambda: next(clock))
    # The deadline is read at 0 (3.5), then before each example at 1, 2, 3: three ran.
    assert [e.skipped for e in report.examples] == [False] * 3 + [True] * 3
    assert all(e.passed for e in report.examples[:3])
    assert report.status is VettingStatus.FAILED
    skipped = report.examples[3]
    assert skipped.failures == ("not run: the upload's vetting budget of 3.5 s was spent",)
    data = report.to_json()
    assert data["totals"]["skipped"] == 3 and data["budget_s"] == 3.5
    assert VettingReport.from_json(data).to_json() == data


def test_the_last_example_gets_only_the_time_left(sandbox: Sandbox) -> None:
    clock = ticking()
    blocking = "def process(task):\n    while True:\n        pass\n"
    report = vet(make_package(blocking, examples=EXAMPLES[:1]), sandbox,
                 SandboxLimits(fuel=10**12, timeout_s=30.0), budget_s=1.3,
                 clock=lambda: next(clock))
    [example] = report.examples
    assert example.status is TaskStatus.TIMEOUT
    assert "(cut to the 0.30 s left of the upload's vetting budget of 1.3 s)" in example.failures[0]


def test_without_a_budget_every_example_runs(sandbox: Sandbox) -> None:
    report = vet(make_package(examples=EXAMPLES), sandbox)
    assert report.status is VettingStatus.PASSED and report.budget_s is None
    assert not any(e.skipped for e in report.examples)


def test_pattern_errors_name_each_example_and_field() -> None:
    examples = [
        {"name": "ok", "input": {}, "checks": [{"op": "matches", "value": "^n=\\d+$"}]},
        {"name": "backref", "input": {}, "checks": [
            {"op": "eq", "value": 1}, {"op": "matches", "value": "(a)\\1"}]},
        {"name": "lookahead", "input": {}, "checks": [{"op": "matches", "value": "a(?=b)"}]},
    ]
    manifest = parse_manifest({
        "name": "acme/x", "version": "1.0.0", "summary": "s", "license": "MIT",
        "templates": ["templates/x.json"], "examples": examples})
    errors = pattern_errors(manifest)
    assert [field for field, _ in errors] == ["examples.1.checks.1.value",
                                              "examples.2.checks.0.value"]
    assert errors[0][1].startswith("example 'backref': bad regular expression")
    assert errors[1][1].startswith("example 'lookahead': bad regular expression")
