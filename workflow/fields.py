"""Field types: parse and validate document data against a flow's fields.

Stored (and API) form is JSON: money as decimal text ("12800.00"), dates as "YYYY-MM-DD",
tables as lists of objects. Nothing is ever rounded: a value with more decimal places than the
field allows is refused, as are NaN, infinities, full-width digits and out-of-range numbers.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from workflow.definitions.spec import FieldSpec
from workflow.errors import InvalidData

FIELD_TYPES = ("string", "text", "integer", "decimal", "boolean", "date", "choice", "table")
DECIMAL_RE = re.compile(r"-?[0-9]+(\.[0-9]+)?", re.ASCII)
INTEGER_RE = re.compile(r"-?[0-9]+", re.ASCII)
DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
MAX_INTEGER_DIGITS = 13  # up to 9,999,999,999,999.99 — far above any sales document
MAX_SAFE_INTEGER = 2**53 - 1
DEFAULT_MAX_LENGTH = {"string": 200, "text": 5000}
# C0/C1 controls other than tab and newline have no place in business text.
CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


# Every field message, by code: the English text (the API's `details`) with `{name}` values.
# The web UI translates a message by its code (webui/messages.py), never by its English.
MESSAGES: dict[str, str] = {
    "required": "is required",
    "unknown_field": "is not a field of this flow",
    "not_object": "must be an object",
    "data_not_object": "must be an object of field values",
    "number_expected": "must be a number such as 12800.00",
    "not_finite": "must be a finite number",
    "decimal_as_text": 'must be a decimal number written as text, such as "12800.00"',
    "not_decimal": "`{value}` is not a decimal number (digits 0-9 and one point)",
    "too_many_places": "has more than {places} decimal places; it will not be rounded",
    "too_many_digits": "is too large (more than {digits} digits)",
    "whole_number": "must be a whole number",
    "whole_number_text": "must be a whole number written without a fraction or an exponent",
    "too_large": "is too large",
    "text_expected": "must be text",
    "control_characters": "contains control characters",
    "too_long": "is longer than {limit} characters",
    "too_short": "is shorter than {limit} characters",
    "date_format": "must be a date written YYYY-MM-DD",
    "not_a_date": "`{value}` is not a real date",
    "boolean_expected": "must be true or false",
    "at_least": "must be at least {limit}",
    "at_most": "must be at most {limit}",
    "one_of": "must be one of: {choices}",
    "rows_expected": "must be a list of rows",
    "too_many_rows": "has more than {limit} rows",
    "too_few_rows": "needs at least {limit} rows",
}


class FieldMessage(str):
    """A field message: its English text (a plain str to the API) plus `code` and `values`,
    by which a UI translates it."""

    code: str
    values: dict[str, Any]

    def __new__(cls, code: str, **values: Any) -> FieldMessage:
        text = MESSAGES[code].format(**values)
        obj = super().__new__(cls, text)
        obj.code = code
        obj.values = values
        return obj


class FieldError(ValueError):
    """One value that does not fit its field."""

    def __init__(self, code: str, **values: Any) -> None:
        self.message = FieldMessage(code, **values)
        super().__init__(self.message)


def parse_decimal(value: Any, places: int = 2) -> Decimal:
    """Parse money exactly: ASCII digits, at most `places` decimals, never rounded."""
    if isinstance(value, bool) or value is None:
        raise FieldError("number_expected")
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise FieldError("not_finite")
        text = format(value, "f")
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise FieldError("decimal_as_text")
    if not DECIMAL_RE.fullmatch(text):
        raise FieldError("not_decimal", value=str(value)[:40])
    whole, _, fraction = text.lstrip("-").partition(".")
    if len(fraction) > places:
        raise FieldError("too_many_places", places=places)
    if len(whole.lstrip("0")) > MAX_INTEGER_DIGITS:
        raise FieldError("too_many_digits", digits=MAX_INTEGER_DIGITS)
    try:
        number = Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the regex already excludes these
        raise FieldError("not_decimal", value=str(value)[:40]) from exc
    if number == 0:
        number = abs(number)  # "-0.00" is stored as 0.00
    return number.quantize(Decimal(1).scaleb(-places)) if places else number


def format_decimal(value: Decimal, places: int = 2) -> str:
    """The stored text of a money value: exactly `places` decimals, never exponent notation."""
    return format(value.quantize(Decimal(1).scaleb(-places)), "f")


def _parse_integer(value: Any) -> int:
    if isinstance(value, bool):
        raise FieldError("whole_number")
    if isinstance(value, Decimal | float):
        # 2000.0 and 1e3 are refused, as documented: a count is written as digits only.
        raise FieldError("whole_number_text")
    if isinstance(value, str) and INTEGER_RE.fullmatch(value.strip()):
        value = int(value.strip())
    if not isinstance(value, int):
        raise FieldError("whole_number")
    if abs(value) > MAX_SAFE_INTEGER:
        raise FieldError("too_large")
    return value


def _parse_text(spec: FieldSpec, value: Any) -> str:
    if not isinstance(value, str):
        raise FieldError("text_expected")
    if CONTROL_RE.search(value if spec.type == "text" else value.replace("\n", "\x0b")):
        raise FieldError("control_characters")
    limit = spec.max_length or DEFAULT_MAX_LENGTH[spec.type]
    if len(value) > limit:
        raise FieldError("too_long", limit=limit)
    if spec.min_length and len(value.strip()) < spec.min_length:
        raise FieldError("too_short", limit=spec.min_length)
    return value


def _parse_date(value: Any) -> str:
    if isinstance(value, dt.date):
        return value.isoformat()
    if not isinstance(value, str) or not DATE_RE.fullmatch(value.strip()):
        raise FieldError("date_format")
    try:
        return dt.date.fromisoformat(value.strip()).isoformat()
    except ValueError as exc:
        raise FieldError("not_a_date", value=str(value)[:40]) from exc


def _parse_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise FieldError("boolean_expected")


def _check_range(spec: FieldSpec, number: Any) -> None:
    lower = spec.min if spec.min is not None else (0 if spec.type == "decimal" else None)
    if lower is not None and number < Decimal(str(lower)):
        raise FieldError("at_least", limit=lower)
    if spec.max is not None and number > Decimal(str(spec.max)):
        raise FieldError("at_most", limit=spec.max)


def is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | list) and not _strip(value))


def _strip(value: str | list[Any]) -> str | list[Any]:
    return value.strip() if isinstance(value, str) else value


def parse_value(spec: FieldSpec, value: Any, where: str, errors: dict[str, list[str]]) -> Any:
    """Parse one non-empty value to its stored JSON form; record errors under `where`."""
    try:
        if spec.type in ("string", "text"):
            return _parse_text(spec, value)
        if spec.type == "integer":
            number = _parse_integer(value)
            _check_range(spec, number)
            return number
        if spec.type == "decimal":
            money = parse_decimal(value, spec.places)
            _check_range(spec, money)
            return format_decimal(money, spec.places)
        if spec.type == "boolean":
            return _parse_boolean(value)
        if spec.type == "date":
            return _parse_date(value)
        if spec.type == "choice":
            if value not in spec.choices:
                raise FieldError("one_of", choices=", ".join(spec.choices))
            return value
        if spec.type == "table":
            return _parse_table(spec, value, where, errors)
    except FieldError as exc:
        errors.setdefault(where, []).append(exc.message)
        return None
    raise AssertionError(f"unknown field type {spec.type}")  # the schema makes this unreachable


def _parse_table(
    spec: FieldSpec, value: Any, where: str, errors: dict[str, list[str]]
) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise FieldError("rows_expected")
    if len(value) > spec.max_rows:
        raise FieldError("too_many_rows", limit=spec.max_rows)
    if spec.min_rows and len(value) < spec.min_rows:
        raise FieldError("too_few_rows", limit=spec.min_rows)
    rows = []
    for index, row in enumerate(value, start=1):
        if not isinstance(row, Mapping):
            errors.setdefault(f"{where}[{index}]", []).append(FieldMessage("not_object"))
            continue
        rows.append(_parse_record(spec.columns, row, f"{where}[{index}].", errors))
    return rows


def _parse_record(
    fields: Iterable[FieldSpec], raw: Mapping[str, Any], prefix: str, errors: dict[str, list[str]]
) -> dict[str, Any]:
    fields = tuple(fields)
    known = {f.name for f in fields}
    for name in raw:
        if name not in known:
            errors.setdefault(f"{prefix}{name}", []).append(FieldMessage("unknown_field"))
    clean: dict[str, Any] = {}
    for spec in fields:
        value = raw.get(spec.name)
        if is_empty(value):
            if spec.required:
                errors.setdefault(f"{prefix}{spec.name}", []).append(FieldMessage("required"))
            continue
        parsed = parse_value(spec, value, f"{prefix}{spec.name}", errors)
        if parsed is not None:
            clean[spec.name] = parsed
    return clean


def with_defaults(fields: Iterable[FieldSpec], raw: Mapping[str, Any]) -> dict[str, Any]:
    """Fill in the definition's defaults for fields the caller left out."""
    data = dict(raw)
    for spec in fields:
        if spec.name not in data and spec.default is not None:
            data[spec.name] = spec.default
    return data


def clean_data(fields: Iterable[FieldSpec], raw: Any) -> dict[str, Any]:
    """Validate `raw` against the fields; return the stored form or raise InvalidData."""
    if not isinstance(raw, Mapping):
        raise InvalidData({"data": [FieldMessage("data_not_object")]})
    errors: dict[str, list[str]] = {}
    clean = _parse_record(fields, raw, "", errors)
    if errors:
        raise InvalidData(errors, "some fields are not valid: " + ", ".join(sorted(errors)))
    return clean


def _typed_value(spec: FieldSpec, value: Any) -> Any:
    if value is None:
        return {"integer": 0, "decimal": Decimal(0), "boolean": False, "table": []}.get(
            spec.type, ""
        )
    if spec.type == "decimal":
        return Decimal(value)
    if spec.type == "table":
        return [{c.name: _typed_value(c, row.get(c.name)) for c in spec.columns} for row in value]
    return value


def typed(fields: Iterable[FieldSpec], stored: Mapping[str, Any]) -> dict[str, Any]:
    """Stored data as guard values: Decimal money, and every field present (empty if unset)."""
    return {spec.name: _typed_value(spec, stored.get(spec.name)) for spec in fields}
