"""Static analysis of Python source with `ast`: structure, cyclomatic complexity and issues.

This file is the whole agent: it imports only the standard library and is published unchanged as
the `process.py` of the `genie_logiciel` package, so it must stay self-contained.

Invariants:
- The source is parsed, never executed or imported.
- Invalid Python is a result (`syntax_error` with line and column), not an exception.
- Cyclomatic complexity of a function is 1 + one per decision point in its own body: `if`/`elif`,
  conditional expression, `for`/`while` (and their `else`), each `except`, each extra operand of
  `and`/`or`, each comprehension `for` and `if`, each `match` case, each `assert`. Nested
  functions and classes are measured on their own, not added to the enclosing function; lambdas
  count towards the function that contains them.
- Functions, classes, imports and issues are listed in source order.
"""

from __future__ import annotations

import ast
import itertools
from dataclasses import asdict, dataclass, field
from typing import Any

DEFAULT_MAX_COMPLEXITY = 10
MAX_ARGUMENTS = 6

# The builtins people most often shadow by accident, spelled out because this file may import only
# the modules the sandbox allows (and shadowing `copyright` or `credits` matters to nobody).
_BUILTINS = """all any bin bool bytes callable chr compile dict dir divmod filter float format
    frozenset hash help hex id input int iter len list map max min next object oct open ord pow
    print range repr round set slice sorted str sum tuple type vars zip"""
_BUILTIN_NAMES = frozenset(_BUILTINS.split())
_MUTABLE_LITERALS = (ast.List, ast.Dict, ast.Set, ast.ListComp, ast.DictComp, ast.SetComp)
_MUTABLE_CALLS = frozenset({"list", "dict", "set", "bytearray", "defaultdict", "OrderedDict"})
_TERMINATORS = (ast.Return, ast.Raise, ast.Continue, ast.Break)


@dataclass(frozen=True)
class FunctionInfo:
    name: str
    qualname: str
    line: int
    end_line: int
    args: list[str]
    complexity: int
    is_method: bool
    is_async: bool
    has_docstring: bool
    decorators: list[str]


@dataclass(frozen=True)
class ClassInfo:
    name: str
    line: int
    end_line: int
    bases: list[str]
    methods: list[str]
    has_docstring: bool


@dataclass(frozen=True)
class ImportInfo:
    module: str
    names: list[str]
    line: int


@dataclass(frozen=True)
class Issue:
    code: str
    message: str
    line: int
    column: int
    severity: str  # "error", "warning" or "info"


@dataclass(frozen=True)
class SyntaxProblem:
    message: str
    line: int
    column: int


@dataclass
class Analysis:
    lines: int
    code_lines: int
    comment_lines: int
    functions: list[FunctionInfo] = field(default_factory=list)
    classes: list[ClassInfo] = field(default_factory=list)
    imports: list[ImportInfo] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    total_complexity: int = 0
    max_complexity: int = 0
    syntax_error: SyntaxProblem | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Exact node types, looked up by `type(node)`: far cheaper than `isinstance` on every node.
_SCOPES = frozenset({ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef})
_DECISIONS = frozenset(
    {ast.If, ast.IfExp, ast.ExceptHandler, ast.Assert, ast.match_case, ast.For, ast.AsyncFor}
    | {ast.While, ast.BoolOp, ast.comprehension, ast.Try, ast.TryStar}
)


def _own_nodes(node: ast.AST) -> list[ast.AST]:
    """Every node in the body of `node`, not descending into nested functions or classes.

    Decorators and default values run in the enclosing scope, so they are not counted here.
    """
    found: list[ast.AST] = []
    stack: list[ast.AST] = list(getattr(node, "body", []))
    while stack:
        child = stack.pop()
        found.append(child)
        if type(child) not in _SCOPES:
            stack.extend(ast.iter_child_nodes(child))
    return found


def complexity(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """McCabe cyclomatic complexity of one function (see the module docstring for what counts)."""
    score = 1
    for node in _own_nodes(function):
        if type(node) not in _DECISIONS:
            continue
        if isinstance(node, ast.For | ast.AsyncFor | ast.While):
            score += 2 if node.orelse else 1
        elif isinstance(node, ast.BoolOp):
            score += len(node.values) - 1
        elif isinstance(node, ast.comprehension):
            score += 1 + len(node.ifs)
        elif isinstance(node, ast.Try | ast.TryStar):
            score += 1 if node.orelse else 0
        else:  # if/elif, conditional expression, except, assert, match case
            score += 1
    return score


def _arg_names(args: ast.arguments) -> list[str]:
    names = [a.arg for a in (*args.posonlyargs, *args.args)]
    if args.vararg:
        names.append("*" + args.vararg.arg)
    names.extend(a.arg for a in args.kwonlyargs)
    if args.kwarg:
        names.append("**" + args.kwarg.arg)
    return names


def _is_public(name: str) -> bool:
    return not name.startswith("_")


class _Visitor(ast.NodeVisitor):
    def __init__(self, source: str, max_complexity: int) -> None:
        self.source = source
        self.max_complexity = max_complexity
        self.scope: list[tuple[str, bool]] = []  # (name, is_class), innermost last
        self.functions: list[FunctionInfo] = []
        self.classes: list[ClassInfo] = []
        self.imports: list[ImportInfo] = []
        self.issues: list[Issue] = []
        self.imported: dict[str, ast.AST] = {}  # bound name -> import node
        self.used: set[str] = set()
        self.exported: set[str] = set()

    def text(self, node: ast.AST) -> str:
        """The source of `node` as written, on one line.

        Not `ast.unparse`: it lives in a helper module the sandbox does not bundle.
        """
        return " ".join((ast.get_source_segment(self.source, node) or "?").split())

    def issue(self, code: str, message: str, node: ast.AST, severity: str = "warning") -> None:
        line, column = getattr(node, "lineno", 1), getattr(node, "col_offset", 0) + 1
        self.issues.append(Issue(code, message, line, column, severity))

    def _qualname(self, name: str) -> str:
        return ".".join([*(n for n, _ in self.scope), name])

    def _in_public_scope(self) -> bool:
        """Functions nested in functions, or defined in private classes, are not public API."""
        return all(is_class and _is_public(n) for n, is_class in self.scope)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        is_method = bool(self.scope) and self.scope[-1][1]
        score = complexity(node)
        has_doc = ast.get_docstring(node) is not None
        qualname = self._qualname(node.name)
        self.functions.append(
            FunctionInfo(
                name=node.name,
                qualname=qualname,
                line=node.lineno,
                end_line=node.end_lineno or node.lineno,
                args=_arg_names(node.args),
                complexity=score,
                is_method=is_method,
                is_async=isinstance(node, ast.AsyncFunctionDef),
                has_docstring=has_doc,
                decorators=[self.text(d) for d in node.decorator_list],
            )
        )
        if score > self.max_complexity:
            self.issue(
                "too-complex",
                f"{qualname} has cyclomatic complexity {score} (limit {self.max_complexity})",
                node,
            )
        public = _is_public(node.name) and not node.name.endswith("__")
        if public and not has_doc and self._in_public_scope():
            self.issue(
                "missing-docstring", f"public function {qualname} has no docstring", node, "info"
            )
        own_args = [a for a in _arg_names(node.args) if a.lstrip("*") not in ("self", "cls")]
        if len(own_args) > MAX_ARGUMENTS:
            self.issue(
                "too-many-arguments",
                f"{qualname} takes {len(own_args)} arguments (limit {MAX_ARGUMENTS})",
                node,
            )
        defaults = [*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)]
        for default in defaults:
            if isinstance(default, _MUTABLE_LITERALS) or (
                isinstance(default, ast.Call)
                and isinstance(default.func, ast.Name)
                and default.func.id in _MUTABLE_CALLS
            ):
                self.issue(
                    "mutable-default",
                    f"{qualname} has a mutable default argument {self.text(default)!r}; "
                    "it is shared between calls",
                    default,
                )
        for arg in (*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs):
            if arg.arg in _BUILTIN_NAMES:
                self.issue(
                    "shadowed-builtin",
                    f"argument {arg.arg!r} of {qualname} shadows a builtin",
                    arg,
                    "info",
                )
        for annotated in (
            *node.args.posonlyargs,
            *node.args.args,
            *node.args.kwonlyargs,
            node.args.vararg,
            node.args.kwarg,
        ):
            self._use_annotation(annotated.annotation if annotated else None)
        self._use_annotation(node.returns)
        self.scope.append((node.name, False))
        self.generic_visit(node)
        self.scope.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        methods = [
            n.name for n in node.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        ]
        has_doc = ast.get_docstring(node) is not None
        self.classes.append(
            ClassInfo(
                node.name,
                node.lineno,
                node.end_lineno or node.lineno,
                [self.text(b) for b in node.bases],
                methods,
                has_doc,
            )
        )
        if _is_public(node.name) and not has_doc and self._in_public_scope():
            self.issue(
                "missing-docstring",
                f"public class {self._qualname(node.name)} has no docstring",
                node,
                "info",
            )
        self.scope.append((node.name, True))
        self.generic_visit(node)
        self.scope.pop()

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            # `import a.b` binds `a`; `import a.b as c` binds `c`.
            bound = alias.asname or alias.name.split(".")[0]
            self.imported.setdefault(bound, node)
            self.imports.append(ImportInfo(alias.name, [], node.lineno))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = "." * node.level + (node.module or "")
        self.imports.append(ImportInfo(module, [a.name for a in node.names], node.lineno))
        if module == "__future__":
            return
        for alias in node.names:
            if alias.name == "*":
                self.issue(
                    "star-import", f"'from {module} import *' hides where names come from", node
                )
            elif alias.asname != alias.name:  # `import x as x` is an explicit re-export
                self.imported.setdefault(alias.asname or alias.name, node)

    def visit_Name(self, node: ast.Name) -> None:
        self.used.add(node.id)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self.generic_visit(node)

    def _use_annotation(self, annotation: ast.expr | None) -> None:
        """String annotations ("Agent", "list[Task]") use the names they spell."""
        for node in ast.walk(annotation) if annotation is not None else ():
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                try:
                    parsed = ast.parse(node.value, mode="eval")
                except SyntaxError:
                    continue
                self.used.update(n.id for n in ast.walk(parsed) if isinstance(n, ast.Name))

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._use_annotation(node.annotation)
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        names_all = any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
        if names_all and isinstance(node.value, ast.List | ast.Tuple):
            self.exported.update(
                e.value
                for e in node.value.elts
                if isinstance(e, ast.Constant) and isinstance(e.value, str)
            )
        self.generic_visit(node)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is None:
            self.issue(
                "bare-except",
                "bare 'except:' also catches KeyboardInterrupt and SystemExit; name the exceptions",
                node,
            )
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Name) and node.func.id in ("eval", "exec"):
            self.issue("eval-exec", f"{node.func.id}() runs arbitrary code", node, "error")
        self.generic_visit(node)

    def visit_Compare(self, node: ast.Compare) -> None:
        for op, right in zip(node.ops, node.comparators, strict=True):
            if (
                isinstance(op, ast.Eq | ast.NotEq)
                and isinstance(right, ast.Constant)
                and (right.value is None or isinstance(right.value, bool))
            ):
                wanted = "is" if isinstance(op, ast.Eq) else "is not"
                self.issue(
                    "singleton-comparison",
                    f"compare to {right.value!r} with '{wanted}', not '=='/'!='",
                    node,
                )
        self.generic_visit(node)

    def generic_visit(self, node: ast.AST) -> None:
        body = getattr(node, "body", None)
        for block in (body, getattr(node, "orelse", None), getattr(node, "finalbody", None)):
            if isinstance(block, list):
                self._check_unreachable(block)
        super().generic_visit(node)

    def _check_unreachable(self, block: list[ast.stmt]) -> None:
        for stmt, following in itertools.pairwise(block):
            if isinstance(stmt, _TERMINATORS):
                kind = type(stmt).__name__.lower()
                self.issue("unreachable-code", f"code after '{kind}' never runs", following)
                return

    def unused_imports(self) -> None:
        for name, node in self.imported.items():
            if name not in self.used and name not in self.exported:
                self.issue("unused-import", f"{name!r} is imported but never used", node)


def count_lines(source: str) -> tuple[int, int, int]:
    """(total lines, lines holding code, lines holding only a comment)."""
    lines = source.splitlines()
    comments = sum(1 for line in lines if line.lstrip().startswith("#"))
    blank = sum(1 for line in lines if not line.strip())
    return len(lines), len(lines) - comments - blank, comments


def analyze(source: str, max_complexity: int = DEFAULT_MAX_COMPLEXITY) -> Analysis:
    """Parse `source` and report its functions, classes, imports, complexity and issues."""
    total, code, comments = count_lines(source)
    result = Analysis(lines=total, code_lines=code, comment_lines=comments)
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        result.syntax_error = SyntaxProblem(exc.msg, exc.lineno or 1, exc.offset or 1)
        return result
    except ValueError as exc:  # e.g. a NUL byte in the source
        result.syntax_error = SyntaxProblem(str(exc), 1, 1)
        return result
    visitor = _Visitor(source, max_complexity)
    visitor.visit(tree)
    visitor.unused_imports()
    result.functions = sorted(visitor.functions, key=lambda f: f.line)
    result.classes = sorted(visitor.classes, key=lambda c: c.line)
    result.imports = visitor.imports
    result.issues = sorted(visitor.issues, key=lambda i: (i.line, i.column, i.code))
    result.total_complexity = sum(f.complexity for f in result.functions)
    result.max_complexity = max((f.complexity for f in result.functions), default=0)
    return result


def process(task: dict[str, Any]) -> dict[str, Any]:
    """Task `{"source": str, "max_complexity"?: int}` (`"text"` is accepted for `"source"`)."""
    if not isinstance(task, dict):
        raise ValueError(f"task must be a JSON object, got {type(task).__name__}")
    source = task.get("source", task.get("text"))
    if not isinstance(source, str):
        got = "nothing" if source is None else type(source).__name__
        raise ValueError(f"'source' (or 'text') must be a string of Python code, got {got}")
    limit = task.get("max_complexity", DEFAULT_MAX_COMPLEXITY)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"'max_complexity' must be a positive integer, got {limit!r}")
    return analyze(source, limit).to_dict()
