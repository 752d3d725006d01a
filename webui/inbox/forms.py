"""Turn a submitted HTML form into document data for the engine (which does all validation)."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from werkzeug.datastructures import MultiDict

from workflow.definitions.spec import FieldSpec

BLANK_ROWS = 2  # empty table rows offered without JavaScript


def row_name(table: str, index: int, column: str) -> str:
    return f"{table}-{index}-{column}"


# "12,000.00" is how the app itself shows money: accepted back when the groups are well formed
# (1,2 or 12,00 stay as typed, and the engine names the mistake).
GROUPED_RE = re.compile(r"\s*[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?\s*")


def _number(spec: FieldSpec, value: str) -> str:
    if spec.type in ("decimal", "integer") and GROUPED_RE.fullmatch(value):
        return value.replace(",", "").strip()
    return value


def _checkbox(form: MultiDict, name: str) -> str:
    return "true" if form.get(name) else "false"


def form_data(fields: tuple[FieldSpec, ...], form: MultiDict) -> dict[str, Any]:
    """Raw values as typed (strings); entirely blank table rows are dropped."""
    data: dict[str, Any] = {}
    for spec in fields:
        if spec.type == "table":
            pattern = re.compile(rf"{re.escape(spec.name)}-(\d{{1,4}})-\w+")
            indices = sorted({int(m.group(1)) for k in form if (m := pattern.fullmatch(k))})
            rows = []
            for index in indices:
                row: dict[str, Any] = {}
                for column in spec.columns:
                    name = row_name(spec.name, index, column.name)
                    if column.type == "boolean":
                        row[column.name] = _checkbox(form, name)
                    else:
                        row[column.name] = _number(column, form.get(name, ""))
                if any(v not in ("", "false") and str(v).strip() for v in row.values()):
                    rows.append(row)
            data[spec.name] = rows
        elif spec.type == "boolean":
            data[spec.name] = _checkbox(form, spec.name)
        else:
            data[spec.name] = _number(spec, form.get(spec.name, ""))
    return data


def form_values(fields: tuple[FieldSpec, ...], stored: dict[str, Any]) -> dict[str, Any]:
    """Stored data as form values (strings), for an edit form."""
    values: dict[str, Any] = {}
    for spec in fields:
        value = stored.get(spec.name, spec.default)
        if spec.type == "table":
            values[spec.name] = [
                {c.name: _text(row.get(c.name)) for c in spec.columns} for row in value or []
            ]
        else:
            values[spec.name] = _text(value)
    return values


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def search_args(args: MultiDict) -> tuple[dict[str, Any], dict[str, str]]:
    """Inbox search parameters: number, q (customer/title), min and max amount."""
    criteria: dict[str, Any] = {}
    problems: dict[str, str] = {}
    number = args.get("number", "").strip().lstrip("#")
    if number:
        if number.isascii() and number.isdigit():
            criteria["number"] = int(number)
        else:
            problems["number"] = "number"
    if args.get("q", "").strip():
        criteria["text"] = args["q"].strip()[:200]
    for key, name in (("min", "amount_min"), ("max", "amount_max")):
        raw = args.get(key, "").strip()
        if raw:
            try:
                value = Decimal(raw)
            except InvalidOperation:
                problems[key] = key
                continue
            if value.is_finite():
                criteria[name] = value
            else:
                problems[key] = key
    return criteria, problems
