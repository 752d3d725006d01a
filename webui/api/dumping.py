"""Response schemas compiled once into plain functions that build the same bodies as
`Schema.dump`, without marshmallow's per-field machinery.

Why: an inbox page of 50 documents is ~1,500 field values, and `Schema.dump` spent about a
quarter of the request's CPU on them (generic attribute lookup, `Field.serialize`, a nested
`Schema.dump` per approval and checklist item). The schemas stay the one definition of every
shape, and of the OpenAPI document; this module only walks their bound fields once.

Exactness comes first:
- every value is still formatted by its field's own `_serialize` (`LocalDateTime`,
  `Localized`, `Method`, `Dict`, …); only `String`, `Integer` and fields that format nothing
  are written inline, as marshmallow writes them;
- what the compiler does not know is left to marshmallow: a schema with dump hooks or its own
  `get_attribute`, a field with its own `get_value`, a field type other than those above;
- the tests dump every response of the suite both ways and compare them
  (`tests/conftest.py`, `checked_dumps`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from marshmallow import Schema, fields, missing
from marshmallow.decorators import POST_DUMP, PRE_DUMP
from marshmallow.utils import ensure_text_type

Dumper = Callable[[Any], Any]
ValueWriter = Callable[[Any, Any], Any]  # (value, the object it came from) → JSON value


@cache
def dumper(schema: type[Schema]) -> Dumper:
    """`schema().dump`, compiled (once per schema class)."""
    return compile_schema(schema())


def compile_schema(schema: Schema) -> Dumper:
    """A function equal to `schema.dump` (one object, or a list when `schema.many`)."""
    if not _compilable(schema):
        return schema.dump
    steps = [
        (name if field.data_key is None else field.data_key, _reader(schema, name, field))
        for name, field in schema.dump_fields.items()
    ]

    def one(obj: Any) -> dict[str, Any]:
        body = {}
        for key, read in steps:
            value = read(obj)
            if value is not missing:
                body[key] = value
        return body

    if not schema.many:
        return one
    # As Schema.dump: a list for a collection, and None handled as one object.
    return lambda objs: [one(o) for o in objs] if objs is not None else one(objs)


def _compilable(schema: Schema) -> bool:
    """Whether the compiler writes what `schema.dump` writes: no dump hooks, no attribute
    access of its own."""
    return not (
        schema._hooks[PRE_DUMP]
        or schema._hooks[POST_DUMP]
        or type(schema).get_attribute is not Schema.get_attribute
        or schema.dict_class is not dict
    )


def _reader(schema: Schema, name: str, field: fields.Field) -> Callable[[Any], Any]:
    """obj → the field's JSON value, or `missing` to leave the key out (`Field.serialize`)."""
    if type(field).get_value is not fields.Field.get_value:
        return lambda obj: field.serialize(name, obj, accessor=schema.get_attribute)
    write = _writer(name, field)
    if not field._CHECK_ATTRIBUTE:  # Method, Function, Constant: they read the object itself
        return lambda obj: write(None, obj)
    get = _getter(field.attribute or name)
    default = field.dump_default

    def read(obj: Any) -> Any:
        value = get(obj)
        if value is missing:
            value = default() if callable(default) else default
            if value is missing:
                return missing
        return write(value, obj)

    return read


def _writer(name: str, field: fields.Field) -> ValueWriter:
    """(value, obj) → what `field._serialize(value, name, obj)` returns."""
    kind = type(field)
    if kind is fields.Nested:
        return _nested(field)
    if kind is fields.List:
        inner = _writer(name, field.inner)
        return lambda value, obj: None if value is None else [inner(v, obj) for v in value]
    if kind is fields.String:
        return lambda value, obj: (
            value if type(value) is str else None if value is None else ensure_text_type(value)
        )
    if kind is fields.Integer and not field.as_string:
        return lambda value, obj: None if value is None else int(value)
    if kind._serialize is fields.Field._serialize:  # Raw, Boolean: the value as it is
        return lambda value, obj: value
    serialize = field._serialize
    return lambda value, obj: serialize(value, name, obj)


def _nested(field: fields.Nested) -> ValueWriter:
    """A nested schema, compiled when first used: a schema that nests itself (a table's
    columns) would otherwise compile forever; data, not the schema, bounds the depth."""
    compiled: Dumper | None = None

    def write(value: Any, obj: Any) -> Any:
        nonlocal compiled
        if value is None:
            return None
        if compiled is None:
            schema = field.schema
            many = schema.many or field.many
            if not _compilable(schema):  # its hooks may treat a collection as a whole
                compiled = lambda values: schema.dump(values, many=many)  # noqa: E731
            elif schema.many or not field.many:
                compiled = compile_schema(schema)
            else:
                single = compile_schema(schema)
                compiled = lambda values: [single(v) for v in values]  # noqa: E731
        return compiled(value)

    return write


def _getter(attribute: str) -> Callable[[Any], Any]:
    """`marshmallow.utils.get_value(obj, attribute, missing)`, with the path split once."""
    if "." not in attribute:
        return lambda obj: _value_for_key(obj, attribute)
    keys = attribute.split(".")

    def get(obj: Any) -> Any:
        for key in keys:
            obj = _value_for_key(obj, key)
        return obj

    return get


def _value_for_key(obj: Any, key: str) -> Any:
    """As `marshmallow.utils._get_value_for_key`: an item if the object has items, else (or if
    it has none by that key) an attribute; `missing` when neither exists."""
    if not hasattr(obj, "__getitem__"):
        return getattr(obj, key, missing)
    try:
        return obj[key]
    except (KeyError, IndexError, TypeError, AttributeError):
        return getattr(obj, key, missing)
