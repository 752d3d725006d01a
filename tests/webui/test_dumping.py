"""The compiled response dumpers (webui/api/dumping.py) write what marshmallow writes.

The suite's own responses are compared on every request (tests/conftest.py, `checked_dumps`);
these tests cover the corners real responses may not reach, and the fall-backs."""

from __future__ import annotations

import datetime as dt
import importlib
import inspect
import json
from types import SimpleNamespace
from typing import Any

import pytest
from marshmallow import Schema, fields, missing, post_dump

from webui.api import dumping
from webui.api import schemas as s


def same(schema: Schema, obj: Any) -> Any:
    """The compiled body, after checking it is marshmallow's, value for value and type."""
    body = dumping.compile_schema(schema)(obj)
    expected = schema.dump(obj)
    assert json.dumps(body, sort_keys=True, default=repr) == json.dumps(
        expected, sort_keys=True, default=repr
    )
    return body


class Person(Schema):
    user = fields.String(attribute="who.username", required=True)
    name = fields.String(attribute="who.name")


class Sample(Schema):
    id = fields.Integer()
    as_text = fields.Integer(as_string=True)
    title = fields.String()
    flag = fields.Boolean()
    raw = fields.Raw()
    data = fields.Dict()
    renamed = fields.String(data_key="from", attribute="starts")
    defaulted = fields.String(dump_default="-")
    computed = fields.Method("_computed")
    skipped = fields.Method("_skipped")
    owner = fields.Nested(Person, allow_none=True)
    people = fields.List(fields.Nested(Person))
    team = fields.Nested(Person, many=True)
    tags = fields.List(fields.String())
    when = s.LocalDateTime()
    amount = fields.Decimal(as_string=True)
    secret = fields.String(load_only=True)

    def _computed(self, obj: Any) -> str:
        return f"#{obj['id']}"

    def _skipped(self, obj: Any) -> Any:
        return missing


def test_values_missing_keys_defaults_and_nesting_match_marshmallow(app: Any) -> None:
    full = {
        "id": "7",  # formatted as marshmallow formats it: int("7")
        "as_text": 8,
        "title": b"bytes",
        "flag": 1,  # Boolean writes the value as it is
        "raw": {"k": [1, 2]},
        "data": {"amount": "12.50"},
        "starts": "2026-12-07",
        "owner": {"who": SimpleNamespace(username="li", name="李")},
        "people": [{"who": {"username": "wang"}}, {"who": None}],  # no name: the key is left out
        "team": [{"who": {"username": "zhou", "name": "周"}}],
        "tags": ["a", 5, None],
        "when": dt.datetime(2026, 12, 7, 1, 30, tzinfo=dt.UTC),
        "amount": "3.10",
        "secret": "never dumped",
    }
    with app.test_request_context():
        body = same(Sample(), full)
        assert "secret" not in body and "skipped" not in body
        assert body["from"] == "2026-12-07" and body["defaulted"] == "-"
        assert body["people"] == [{"user": "wang"}, {}]
        for key in [k for k in full if k != "id"]:  # each key left out in turn, or None
            same(Sample(), {k: v for k, v in full.items() if k != key})
            same(Sample(), {**full, key: None})
        same(Sample(many=True), [full, {"id": 1}])
        same(Sample(only=("id", "owner")), full)


def test_a_schema_that_nests_itself_is_compiled_as_deep_as_the_data(app: Any) -> None:
    column = {"name": "qty", "type": "integer", "label": "数量", "required": True, "columns": None}
    table = {"name": "lines", "type": "table", "label": "明细", "columns": [column]}
    with app.test_request_context():
        same(s.FieldSchema(), {"name": "goods", "type": "table", "columns": [table]})


def test_what_the_compiler_does_not_know_is_left_to_marshmallow() -> None:
    class Hooked(Schema):
        id = fields.Integer()

        @post_dump
        def wrap(self, data: dict, **_: Any) -> dict:
            return {"wrapped": data}

    class OwnAccess(Schema):
        id = fields.Integer()

        def get_attribute(self, obj: Any, attr: str, default: Any) -> Any:
            return 42

    class WholeList(Schema):
        id = fields.Integer()

        @post_dump(pass_collection=True)
        def count(self, data: Any, many: bool, **_: Any) -> Any:
            return {"count": len(data)} if many else data

    class Outer(Schema):
        one = fields.Nested(Hooked)
        batch = fields.Nested(WholeList, many=True)
        listed = fields.List(fields.Nested(WholeList))

    hooked, own = Hooked(), OwnAccess()
    assert dumping.compile_schema(hooked) == hooked.dump
    assert dumping.compile_schema(own) == own.dump
    assert same(hooked, {"id": 1}) == {"wrapped": {"id": 1}}
    assert same(own, {"id": 1}) == {"id": 42}
    # Nested hooked schemas are dumped by marshmallow, a collection as a whole.
    rows = [{"id": 1}, {"id": 2}]
    assert same(Outer(), {"one": {"id": 3}, "batch": rows, "listed": rows}) == {
        "one": {"wrapped": {"id": 3}},
        "batch": {"count": 2},
        "listed": [{"id": 1}, {"id": 2}],
    }


def test_every_response_schema_of_the_api_compiles() -> None:
    """Compiling walks each schema's fields once; none of the API's falls back."""
    found = []
    for module in ("schemas", "views", "lists", "users", "flows", "audit_views",
                   "report_views", "deadline_views", "bulk"):  # fmt: skip
        namespace = importlib.import_module(f"webui.api.{module}")
        for _, schema in inspect.getmembers(namespace, inspect.isclass):
            if issubclass(schema, s.OutputSchema) and schema.__module__ == namespace.__name__:
                instance = schema()
                assert dumping.compile_schema(instance) != instance.dump, schema.__name__
                found.append(schema)
    assert s.DocumentSchema in found and len(found) > 20


@pytest.mark.parametrize("attribute", ["user", "user.username", "a.b.c"])
def test_attribute_paths_read_items_then_attributes_as_marshmallow_does(attribute: str) -> None:
    from marshmallow.utils import get_value

    objects = [
        {"user": {"username": "li", "a": None}},
        {"user": SimpleNamespace(username="li")},
        SimpleNamespace(user=SimpleNamespace(username=None)),
        {"a": {"b": {"c": 0}}},
        {"a": SimpleNamespace(b=[1])},
        [],
        None,
    ]
    read = dumping._getter(attribute)
    for obj in objects:
        assert read(obj) is get_value(obj, attribute, missing) or read(obj) == get_value(
            obj, attribute, missing
        )
