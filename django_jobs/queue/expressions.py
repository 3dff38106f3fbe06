"""Small SQL expressions that let a guarded UPDATE edit a JSON list in place.

Appending an attempt's error in the same statement that changes the state
keeps each transition a single atomic write, with no read-modify-write race.
Supported databases: PostgreSQL (jsonb), SQLite (JSON1), MariaDB and MySQL.
"""

from __future__ import annotations

import json
from typing import Any

from django.db.models import F, Func, JSONField, Value

from ..vendors import require_supported


class _JSONListEdit(Func):
    output_field = JSONField()
    templates: dict[str, str] = {}

    def as_sql(self, compiler, connection, **extra):
        require_supported(connection.vendor)
        template = self.templates[connection.vendor]
        sql, params = [], []
        for expression in self.get_source_expressions():
            part_sql, part_params = compiler.compile(expression)
            sql.append(part_sql)
            params.extend(part_params)
        return template.format(*sql), params


class JSONAppend(_JSONListEdit):
    """The JSON list in ``column`` with ``value`` appended."""

    templates = {
        "postgresql": "({0} || jsonb_build_array(({1})::jsonb))",
        "sqlite": "json_insert({0}, '$[#]', json({1}))",
        "mysql": "JSON_ARRAY_APPEND({0}, '$', JSON_EXTRACT({1}, '$'))",
    }

    def __init__(self, column: str, value: Any) -> None:
        super().__init__(F(column), Value(json.dumps(value)))


class JSONDropLast(_JSONListEdit):
    """The JSON list in ``column`` without its last item."""

    templates = {
        "postgresql": "({0} - (-1))",
        "sqlite": "json_remove({0}, '$[#-1]')",
        "mysql": "JSON_REMOVE({0}, CONCAT('$[', JSON_LENGTH({0}) - 1, ']'))",
    }

    def __init__(self, column: str) -> None:
        super().__init__(F(column))
