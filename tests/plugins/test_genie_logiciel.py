"""The genie_logiciel agent: structure, cyclomatic complexity and issues of Python source."""

from __future__ import annotations

import ast
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from core.errors import AgentInputError
from plugins import genie_logiciel
from plugins.logic.genie_logiciel import Analysis, analyze, complexity, process
from tests.plugins import run_in_sandbox, stand_in

SAMPLE = (Path(__file__).resolve().parents[2] / "examples" / "sample_module.py").read_text()

CLEAN = '''\
"""A tidy module."""

from __future__ import annotations

import os.path
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from decimal import Decimal

__all__ = ["total", "Reexported"]

from fractions import Fraction as Reexported


def total(values: Iterable[int], scale: "Decimal | None" = None) -> int:
    """Sum the values."""
    return sum(values) if os.path.sep else 0
'''


def function(source: str) -> ast.FunctionDef:
    node = ast.parse(textwrap.dedent(source)).body[0]
    assert isinstance(node, ast.FunctionDef)
    return node


def by_name(result: Analysis) -> dict[str, Any]:
    return {f.qualname: f for f in result.functions}


def issues(result: Analysis, code: str) -> list[int]:
    return [i.line for i in result.issues if i.code == code]


def line_of(needle: str) -> int:
    return next(n for n, line in enumerate(SAMPLE.splitlines(), 1) if needle in line)


def test_complexity_of_a_known_function_matches_the_hand_count() -> None:
    # late_fee: 1 + if(1) + or(1) + and(1) + if(1) + 2 elif(2) + for with else(2) + if(1) + or(1)
    functions = by_name(analyze(SAMPLE))
    assert functions["late_fee"].complexity == 11
    # Invoice.total: 1 + comprehension for(1) + its if(1) + if(1) + and(1)
    assert functions["Invoice.total"].complexity == 5
    assert functions["evaluate_discount"].complexity == 1


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def f():\n    return 1\n", 1),
        ("def f(a, b):\n    if a and b or a:\n        return 1\n    return 2\n", 4),
        ("def f(x):\n    while x:\n        x -= 1\n    else:\n        pass\n", 3),
        (
            "def f(x):\n    try:\n        g()\n    except A:\n        pass\n"
            "    except B:\n        pass\n",
            3,
        ),
        (
            "def f(x):\n    match x:\n        case 1:\n            pass\n        case _:\n"
            "            pass\n",
            3,
        ),
        ("def f(x):\n    return [y for y in x if y if y > 1]\n", 4),
        ("def f(x):\n    def inner():\n        if x:\n            pass\n    return inner\n", 1),
        ("def f(x):\n    key = lambda y: y if y else 0\n    return key\n", 2),
    ],
)
def test_complexity_counts_each_decision_point(source: str, expected: int) -> None:
    assert complexity(function(source)) == expected


def test_functions_classes_and_imports_are_listed_in_source_order() -> None:
    result = analyze(SAMPLE)
    assert [f.qualname for f in result.functions] == [
        "Invoice.total",
        "InvoiceStore.__init__",
        "InvoiceStore.load",
        "parse_amount",
        "late_fee",
        "evaluate_discount",
    ]
    load = by_name(result)["InvoiceStore.load"]
    assert load.args == ["self", "number", "cache"] and load.is_method
    assert load.line == line_of("def load(")
    assert [(c.name, c.methods) for c in result.classes] == [
        ("Invoice", ["total"]),
        ("InvoiceStore", ["__init__", "load"]),
    ]
    assert result.classes[0].bases == []
    assert [i.module for i in result.imports] == ["json", "os", "re", "dataclasses", "datetime"]
    assert result.total_complexity == 23 and result.max_complexity == 11


def test_arguments_bases_decorators_and_async_are_reported() -> None:
    source = textwrap.dedent('''\
        class Repo(Base, metaclass=Meta):
            """Doc."""
            @staticmethod
            async def fetch(a, /, b, *rest, key=None, **extra):
                """Doc."""
    ''')
    result = analyze(source)
    fetch = result.functions[0]
    assert fetch.args == ["a", "b", "*rest", "key", "**extra"]
    assert fetch.is_async and fetch.decorators == ["staticmethod"]
    assert result.classes[0].bases == ["Base"]


def test_every_planted_issue_in_the_sample_is_found_on_its_line() -> None:
    result = analyze(SAMPLE)
    assert issues(result, "unused-import") == [line_of("import os"), line_of("import date")]
    assert issues(result, "bare-except") == [line_of("except:")]
    assert issues(result, "mutable-default") == [line_of("cache={}")]
    assert issues(result, "eval-exec") == [line_of("eval(")]
    assert issues(result, "too-complex") == [line_of("def late_fee")]
    assert issues(result, "too-many-arguments") == [line_of("def late_fee")]
    assert issues(result, "singleton-comparison") == [line_of("== None")]
    assert issues(result, "unreachable-code") == [line_of('print("unreachable")')]
    assert issues(result, "missing-docstring") == [
        line_of("class InvoiceStore"),
        line_of("def load("),
        line_of("def parse_amount"),
        line_of("def evaluate_discount"),
    ]
    severities = {i.code: i.severity for i in result.issues}
    assert severities["eval-exec"] == "error"


def test_clean_code_has_no_issues() -> None:
    # Imports used only in string annotations, re-exported through __all__ or from __future__
    # are not unused; `import os.path` binds `os`.
    result = analyze(CLEAN)
    assert result.syntax_error is None
    assert result.issues == []


def test_complexity_limit_is_configurable() -> None:
    assert issues(analyze(SAMPLE, max_complexity=4), "too-complex") == [
        line_of("def total"),
        line_of("def late_fee"),
    ]


def test_syntax_error_is_a_result_with_line_and_column() -> None:
    result = process({"source": "def ok():\n    return 1\n\ndef broken(:\n    pass\n"})
    assert result["syntax_error"]["line"] == 4
    assert result["syntax_error"]["column"] == 12
    assert result["functions"] == [] and result["lines"] == 5


def test_text_is_accepted_for_source_and_result_is_json() -> None:
    assert json.loads(json.dumps(process({"text": SAMPLE}))) == process({"source": SAMPLE})


@pytest.mark.parametrize(
    ("task", "fragment"),
    [
        ({}, "'source'"),
        ({"source": b"x = 1"}, "'source'"),
        ({"source": "x = 1", "max_complexity": 0}, "'max_complexity'"),
    ],
)
def test_bad_tasks_raise_value_error_naming_the_field(task: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        process(task)


def test_hook_answers_only_for_its_implementation_and_reads_config() -> None:
    assert (
        genie_logiciel.plugin.agentfactory_process(
            agent=stand_in("documentaliste"), task={"source": SAMPLE}
        )
        is None
    )
    agent = stand_in("genie_logiciel", {"max_complexity": 100})
    result = genie_logiciel.plugin.agentfactory_process(agent=agent, task={"source": SAMPLE})
    assert result is not None
    assert not [i for i in result["issues"] if i["code"] == "too-complex"]
    with pytest.raises(AgentInputError, match="genie_logiciel: 'source'"):
        genie_logiciel.plugin.agentfactory_process(agent=agent, task={"code": SAMPLE})


@pytest.mark.sandbox
def test_the_published_package_gives_the_native_result_in_the_sandbox() -> None:
    task = {"source": SAMPLE}
    native = json.loads(json.dumps(process(task)))
    assert run_in_sandbox("genie_logiciel", task) == native
