"""Example expectations: exact JSON equality and each check operation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from sandbox.checks import (
    MAX_PATTERN_CHARS,
    MAX_SUBJECT_CHARS,
    StepBudget,
    evaluate,
    evaluate_check,
    json_equal,
    pattern_problem,
    resolve,
)

OUTPUT = {"items": [{"name": "a", "score": 3}], "text": "Hello world", "flag": True, "n": None}


@dataclass
class C:
    path: str
    op: str
    value: Any = None


def test_resolve_walks_dicts_and_list_indexes() -> None:
    assert resolve(OUTPUT, "items.0.name") == "a"
    assert resolve(OUTPUT, "") is OUTPUT
    assert resolve(OUTPUT, "items.-1.score") == 3
    assert resolve(OUTPUT, "items.5.name") is not None  # the missing marker, not None
    assert resolve(OUTPUT, "n") is None


@pytest.mark.parametrize(
    ("check", "holds"),
    [
        (C("items.0.name", "eq", "a"), True),
        (C("items.0.score", "eq", 3.0), True),
        (C("flag", "eq", 1), False),
        (C("text", "ne", "x"), True),
        (C("text", "contains", "world"), True),
        (C("items", "contains", {"name": "a", "score": 3}), True),
        (C("", "contains", "text"), True),
        (C("items.0.score", "gte", 3), True),
        (C("items.0.score", "lte", 2), False),
        (C("text", "gte", 2), False),
        (C("items", "type", "array"), True),
        (C("flag", "type", "integer"), False),
        (C("flag", "type", "boolean"), True),
        (C("n", "type", "null"), True),
        (C("items.0.score", "type", "number"), True),
        (C("n", "exists"), True),
        (C("missing", "exists"), False),
        (C("missing", "exists", False), True),
        (C("text", "matches", r"^Hello\b"), True),
        (C("text", "matches", r"^world"), False),
        (C("missing.deeper", "eq", 1), False),
    ],
)
def test_each_operation(check: C, holds: bool) -> None:
    assert (evaluate_check(check, OUTPUT) is None) is holds


def test_failures_name_the_path_and_what_was_found() -> None:
    failures = evaluate({"a": 1}, [C("items.0.score", "gte", 10), C("nope", "eq", 1)], OUTPUT)
    assert failures[0] == "a: missing, expected 1"
    assert failures[1] == "items.0.score: expected gte 10, found 3"
    assert failures[2].startswith("nope: missing")


def test_bad_regex_and_unknown_type_are_failures_not_crashes() -> None:
    assert "bad regular expression" in (evaluate_check(C("text", "matches", "("), OUTPUT) or "")
    assert "unknown JSON type" in (evaluate_check(C("text", "type", "str"), OUTPUT) or "")


def test_json_equality_keeps_booleans_apart_from_numbers() -> None:
    assert json_equal([1, {"x": 2.0}], [1.0, {"x": 2}])
    assert not json_equal(True, 1)
    assert not json_equal({"a": 1}, {"a": 1, "b": 2})
    assert not json_equal("1", 1)


@pytest.mark.parametrize(
    ("expected", "output", "line"),
    [
        ({"items": [{"name": "a"}, {"name": "b"}]}, {"items": [{"name": "a"}, {"name": "c"}]},
         'items.1.name: expected "b", found "c"'),
        ({"a": 1}, {"a": 1, "extra": [1]}, "extra: not expected, found [1]"),
        ({"xs": [1, 2]}, {"xs": [1]}, "xs.1: missing, expected 2"),
        ({"ok": True}, {"ok": 1}, "ok: expected true, found 1"),
        ([1], {"a": 1}, '<output>: expected [1], found {"a": 1}'),
    ],
)
def test_an_expected_mismatch_names_the_first_differing_field(
    expected: object, output: object, line: str
) -> None:
    assert evaluate(expected, [], output) == [line]


def test_a_long_mismatch_keeps_the_differing_field_and_cuts_only_its_values() -> None:
    long_a, long_b = "a" * 200, "a" * 199 + "b"
    [line] = evaluate({"meta": {"x": 1}, "text": long_a}, [], {"meta": {"x": 1}, "text": long_b})
    assert line.startswith('text: expected "aaa') and ", found \"aaa" in line
    wanted, found = line.removeprefix("text: expected ").split(", found ")
    assert wanted.endswith("…") and found.endswith("…") and len(wanted) == len(found) == 80


# Catastrophic backtracking in a backtracking engine (exponential, or high-degree polynomial
# for `(.*a){12}`); RE2 runs each in time linear in the subject. Every subject fails to match,
# so the whole subject is scanned.
REDOS = [r"(a+)+$", r"^(a|a)*$", r"^(a|aa)+$", r"^(\w+\s?)*$", r"^(.*a){12}$", r"(x+x+)+y"]


@pytest.mark.parametrize("pattern", REDOS)
def test_backtracking_patterns_are_linear(pattern: str) -> None:
    subject = "a" * 60_000 + "!" if "x" not in pattern else "x" * 60_000
    failure = evaluate_check(C("text", "matches", pattern), {"text": subject})
    assert failure is not None and failure.startswith("text: expected matches")


@pytest.mark.parametrize(
    ("pattern", "says"),
    [
        (r"(a)\1", "invalid escape sequence"),
        (r"(?P<x>a)(?P=x)", "invalid"),
        (r"a(?=b)", "invalid perl operator"),
        (r"(?<!a)b", "invalid perl operator"),
        ("a{1001}", "invalid repetition size"),
        ("((a{100}){100}){100}", "bad regular expression"),
        ("a" * (MAX_PATTERN_CHARS + 1), f"at most {MAX_PATTERN_CHARS:,}"),
        (42, "must be a string"),
        ("\ud800", "not valid Unicode"),
    ],
)
def test_patterns_re2_cannot_run_are_named_not_raised(pattern: object, says: str) -> None:
    problem = pattern_problem(pattern)
    assert problem is not None and says in problem
    failure = evaluate_check(C("text", "matches", pattern), OUTPUT)
    assert failure is not None and says in failure


def test_a_subject_past_the_cap_fails_the_check() -> None:
    failure = evaluate_check(C("", "matches", "a"), "a" * (MAX_SUBJECT_CHARS + 1))
    assert failure == (f"<output>: matches applies to at most {MAX_SUBJECT_CHARS:,} characters, "
                       f"found {MAX_SUBJECT_CHARS + 1:,}")
    assert evaluate_check(C("", "matches", "^a+$"), "a" * MAX_SUBJECT_CHARS) is None


@pytest.mark.parametrize("part", ["1" * 5000, "²", "٣", "-" + "9" * 30])
def test_hostile_list_indexes_are_missing_not_raised(part: str) -> None:
    assert evaluate_check(C(f"items.{part}", "exists"), OUTPUT) == f"items.{part}: expected present"


@pytest.mark.parametrize(
    "check",
    [
        C("", "contains", [0, 1]),  # every item compared with a list
        C("", "eq", [0] * 300_000),  # equal: every item visited
        C("", "ne", [1] * 300_000),  # the pairs are queued before the first is compared
    ],
)
def test_comparisons_stop_at_the_step_budget(check: C) -> None:
    output = [0] * 300_000
    budget = StepBudget(100_000)
    failures = evaluate(None, [check, check, check], output, budget)
    assert failures[-1] == "<output>: too large to compare (over 100,000 values visited)"
    assert budget.left < 0


def test_the_default_budget_covers_an_expected_value_of_the_largest_output() -> None:
    output = {"items": list(range(300_000))}  # about the most a 1 MiB output can hold
    assert evaluate(output, [C("items.299999", "eq", 299_999)], output) == []
