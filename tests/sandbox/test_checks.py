"""Example expectations: exact JSON equality and each check operation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from sandbox.checks import evaluate, evaluate_check, json_equal, resolve

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
