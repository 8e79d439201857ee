"""Core statements compiled once per dialect and run on the driver's own cursor.

For the few statements on a hot path (a model call's spend, every request's token lookup),
SQLAlchemy's per-execution work (its Connection and transaction objects, events, the compiled
cache's lookup, the result's wrapping) costs more than the database takes to run them.
`Prepared` keeps what matters of it: the SQL compiled for the engine's dialect, the parameters
in the driver's order, and the bind processors SQLAlchemy would apply to each value (a
datetime's storage format on SQLite, say). Rows come back as the driver's tuples: use it for
columns the driver already returns as the right Python type.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Dialect


@dataclass(frozen=True, slots=True)
class Prepared:
    """A Core statement compiled for one dialect, run on a DB-API cursor."""

    sql: str
    order: tuple[str, ...] | None  # the parameters' order when the driver's style is positional
    processors: dict[str, Callable[[Any], Any]]  # what SQLAlchemy would do to a value first
    fixed: dict[str, Any]  # the statement's own values (a literal in an expression, say)

    @classmethod
    def compile(cls, statement: Any, dialect: Dialect) -> Prepared:
        compiled = statement.compile(dialect=dialect)
        processors = {}
        fixed = {}
        for name, bind in compiled.binds.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                processors[name] = processor
            if not bind.required:
                fixed[name] = bind.value
        order = tuple(compiled.positiontup) if dialect.positional else None
        return cls(str(compiled), order, processors, fixed)

    def execute(self, cursor: Any, params: dict[str, Any]) -> None:
        cursor.execute(self.sql, self._driver_params(params))

    def executemany(self, cursor: Any, rows: list[dict[str, Any]]) -> None:
        cursor.executemany(self.sql, [self._driver_params(params) for params in rows])

    def _driver_params(self, given: dict[str, Any]) -> Any:
        params = {**self.fixed, **given} if self.fixed else given
        for name, processor in self.processors.items():
            params[name] = processor(params[name])
        return params if self.order is None else tuple(params[name] for name in self.order)
