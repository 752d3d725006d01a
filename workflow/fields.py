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


class FieldError(ValueError):
    """One value that does not fit its field."""


def parse_decimal(value: Any, places: int = 2) -> Decimal:
    """Parse money exactly: ASCII digits, at most `places` decimals, never rounded."""
    if isinstance(value, bool) or value is None:
        raise FieldError("must be a number such as 12800.00")
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise FieldError("must be a finite number")
        text = format(value, "f")
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise FieldError('must be a decimal number written as text, such as "12800.00"')
    if not DECIMAL_RE.fullmatch(text):
        raise FieldError(f"`{value}` is not a decimal number (digits 0-9 and one point)")
    whole, _, fraction = text.lstrip("-").partition(".")
    if len(fraction) > places:
        raise FieldError(f"has more than {places} decimal places; it will not be rounded")
    if len(whole.lstrip("0")) > MAX_INTEGER_DIGITS:
        raise FieldError(f"is too large (more than {MAX_INTEGER_DIGITS} digits)")
    try:
        number = Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the regex already excludes these
        raise FieldError(f"`{value}` is not a decimal number") from exc
    if number == 0:
        number = abs(number)  # "-0.00" is stored as 0.00
    return number.quantize(Decimal(1).scaleb(-places)) if places else number


def format_decimal(value: Decimal, places: int = 2) -> str:
    """The stored text of a money value: exactly `places` decimals, never exponent notation."""
    return format(value.quantize(Decimal(1).scaleb(-places)), "f")


def _parse_integer(value: Any) -> int:
    if isinstance(value, bool):
        raise FieldError("must be a whole number")
    if isinstance(value, Decimal | float):
        # 2000.0 and 1e3 are refused, as documented: a count is written as digits only.
        raise FieldError("must be a whole number written without a fraction or an exponent")
    if isinstance(value, str) and INTEGER_RE.fullmatch(value.strip()):
        value = int(value.strip())
    if not isinstance(value, int):
        raise FieldError("must be a whole number")
    if abs(value) > MAX_SAFE_INTEGER:
        raise FieldError("is too large")
    return value


def _parse_text(spec: FieldSpec, value: Any) -> str:
    if not isinstance(value, str):
        raise FieldError("must be text")
    if CONTROL_RE.search(value if spec.type == "text" else value.replace("\n", "\x0b")):
        raise FieldError("contains control characters")
    limit = spec.max_length or DEFAULT_MAX_LENGTH[spec.type]
    if len(value) > limit:
        raise FieldError(f"is longer than {limit} characters")
    if spec.min_length and len(value.strip()) < spec.min_length:
        raise FieldError(f"is shorter than {spec.min_length} characters")
    return value


def _parse_date(value: Any) -> str:
    if isinstance(value, dt.date):
        return value.isoformat()
    if not isinstance(value, str) or not DATE_RE.fullmatch(value.strip()):
        raise FieldError("must be a date written YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(value.strip()).isoformat()
    except ValueError as exc:
        raise FieldError(f"`{value}` is not a real date") from exc


def _parse_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise FieldError("must be true or false")


def _check_range(spec: FieldSpec, number: Any) -> None:
    lower = spec.min if spec.min is not None else (0 if spec.type == "decimal" else None)
    if lower is not None and number < Decimal(str(lower)):
        raise FieldError(f"must be at least {lower}")
    if spec.max is not None and number > Decimal(str(spec.max)):
        raise FieldError(f"must be at most {spec.max}")


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
                raise FieldError(f"must be one of: {', '.join(spec.choices)}")
            return value
        if spec.type == "table":
            return _parse_table(spec, value, where, errors)
    except FieldError as exc:
        errors.setdefault(where, []).append(str(exc))
        return None
    raise AssertionError(f"unknown field type {spec.type}")  # the schema makes this unreachable


def _parse_table(
    spec: FieldSpec, value: Any, where: str, errors: dict[str, list[str]]
) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise FieldError("must be a list of rows")
    if len(value) > spec.max_rows:
        raise FieldError(f"has more than {spec.max_rows} rows")
    if spec.min_rows and len(value) < spec.min_rows:
        raise FieldError(f"needs at least {spec.min_rows} rows")
    rows = []
    for index, row in enumerate(value, start=1):
        if not isinstance(row, Mapping):
            errors.setdefault(f"{where}[{index}]", []).append("must be an object")
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
            errors.setdefault(f"{prefix}{name}", []).append("is not a field of this flow")
    clean: dict[str, Any] = {}
    for spec in fields:
        value = raw.get(spec.name)
        if is_empty(value):
            if spec.required:
                errors.setdefault(f"{prefix}{spec.name}", []).append("is required")
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
        raise InvalidData({"data": ["must be an object of field values"]})
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
