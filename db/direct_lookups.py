"""Key lookups run straight on the `sqlite3` connection, with SQL rendered once per statement and key count.

SQLAlchemy's execution of a compiled, cached statement still costs ~110 µs of CPU for a one-row key
lookup that `sqlite3` runs in ~8 µs (measured on the bench machine): it re-renders the expanding
`IN` list on every execution and builds an execution context and a result object each time. A
signed-in request makes one such lookup (the viewer's row) and a dashboard three.

Here SQLAlchemy still compiles each statement (once per number of values in each list parameter),
and its own type objects still turn the columns into Python values (`result_processor`, e.g. UTC
datetimes from SQLite's text); only the per-execution machinery is skipped. Statements that need
more (a parameter type with a bind processor, columns sharing a name, anything but a SELECT)
are not taken: `rows()` answers None and the caller executes them through SQLAlchemy as before. So
are all statements on an engine with `before_cursor_execute` listeners (db/reads.py), which would
not see these.
`tests/test_reads.py` compares both ways on every lookup the loaders make.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Dialect, Executable, Select

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class _Rendered:
    sql: str
    # For each `?` in order: the parameter's name and, for a list parameter, the index in the list.
    order: tuple[tuple[str, int | None], ...]
    columns: tuple[str, ...]
    processors: tuple[Processor, ...]


_UNSUITED = object()


class DirectLookups:
    def __init__(self, dialect: Dialect, *, max_rendered: int = 2048) -> None:
        self.dialect = dialect
        self.max_rendered = max_rendered  # key counts come from requests: bound what is kept
        # By statement identity and list lengths; the statement is kept, so its id is never reused.
        self._rendered: dict[tuple[int, tuple[int, ...]], tuple[Executable, _Rendered | object]] = {}

    def rows(
        self, connection: sqlite3.Connection, statement: Executable, params: Mapping[str, Any],
    ) -> tuple[tuple[str, ...], list[tuple[Any, ...]]] | None:
        """The columns and the processed rows, or None when this statement must go through SQLAlchemy."""
        lengths = tuple(len(value) for value in params.values() if isinstance(value, list))
        key = (id(statement), lengths)
        found = self._rendered.get(key)
        if found is None:
            found = (statement, self._render(statement, params))
            if len(self._rendered) < self.max_rendered:
                self._rendered[key] = found
        rendered = found[1]
        if not isinstance(rendered, _Rendered):
            return None
        values = tuple(params[name] if index is None else params[name][index] for name, index in rendered.order)
        fetched = connection.execute(rendered.sql, values).fetchall()
        processors = rendered.processors
        if any(processors):
            fetched = [tuple(value if process is None else process(value)
                             for process, value in zip(processors, row, strict=True)) for row in fetched]
        return rendered.columns, fetched

    def _render(self, statement: Executable, params: Mapping[str, Any]) -> _Rendered | object:
        if not isinstance(statement, Select):
            return _UNSUITED
        dialect = self.dialect
        compiled = statement.compile(dialect=dialect)
        for bind in compiled.binds.values():
            if bind.type.dialect_impl(dialect).bind_processor(dialect) is not None:
                return _UNSUITED  # the value would need converting on the way in
        state = compiled.construct_expanded_state(dict(params))
        if state.positiontup is None:
            return _UNSUITED
        expanded = {name: (original, index) for original, names in state.parameter_expansion.items()
                    for index, name in enumerate(names)}
        order = tuple(expanded.get(name, (name, None)) for name in state.positiontup)
        if any(name not in params for name, _ in order):
            return _UNSUITED
        columns = tuple(column.name for column in statement.selected_columns)
        if len(set(columns)) != len(columns):
            return _UNSUITED
        processors = tuple(column.type.dialect_impl(dialect).result_processor(dialect, None)
                           for column in statement.selected_columns)
        return _Rendered(state.statement, order, columns, processors)
