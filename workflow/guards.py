"""The safe expression language for guards and checks: CEL (cel-python), never Python `eval`.

Expressions are compiled once when a definition is loaded; every identifier must be a field of
the flow (or `today`, or a variable bound by a list macro), so a typo is a definition error and
not a guard that silently never holds. Money stays `Decimal`: float literals are refused and
`decimal("…")` gives an exact literal.
"""

from __future__ import annotations

import datetime as dt
import difflib
import logging
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import celpy
from celpy import celtypes
from lark import Token, Tree

log = logging.getLogger(__name__)

MAX_EXPRESSION_LENGTH = 1000
MEMO_SIZE = 4096  # remembered results per guard
MACROS = frozenset({"map", "all", "exists", "exists_one", "filter"})
EXTRA_NAMES = frozenset({"today"})
_ENV = celpy.Environment()


class GuardError(ValueError):
    """An expression that does not compile or names something that is not a field."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def _decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"not a decimal: {value!r}") from exc


def _as_decimal(value: Any) -> Any:
    return Decimal(int(value)) if isinstance(value, celtypes.IntType) else value


def _lift(op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """CEL's int refuses to combine with Decimal; lift the int so `qty * unit_price` is exact."""

    def apply(a: Any, b: Any) -> Any:
        if isinstance(a, Decimal) or isinstance(b, Decimal):
            return op(_as_decimal(a), _as_decimal(b))
        return op(a, b)

    return apply


def _sum(values: Iterable[Any]) -> Any:
    return sum((_as_decimal(v) for v in values), Decimal(0))


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "decimal": _decimal,
    "sum": _sum,
    "_*_": _lift(operator.mul),
    "_+_": _lift(operator.add),
    "_-_": _lift(operator.sub),
}
ALLOWED_FUNCTIONS = frozenset(
    {
        "decimal",
        "sum",
        "size",
        "int",
        "string",
        "bool",
        "contains",
        "startsWith",
        "endsWith",
        "matches",
        "has",
    }
)


def _walk(node: Any) -> Iterable[Any]:
    yield node
    if isinstance(node, Tree):
        for child in node.children:
            yield from _walk(child)


def _token_text(node: Any) -> str | None:
    if isinstance(node, Token):
        return str(node)
    return None


def _inspect(tree: Tree) -> tuple[set[str], set[str], set[str], list[str]]:
    """Return (identifiers, macro-bound variables, called functions, float literals)."""
    identifiers: set[str] = set()
    bound: set[str] = set()
    functions: set[str] = set()
    floats: list[str] = []
    for node in _walk(tree):
        if not isinstance(node, Tree):
            continue
        if node.data == "ident":
            identifiers.add(str(node.children[0]))
        elif node.data == "ident_arg":
            functions.add(str(node.children[0]))
        elif node.data == "member_dot_arg":
            method = _token_text(node.children[1])
            if method:
                functions.add(method)
            if method in MACROS and len(node.children) > 2:
                exprlist = node.children[2]
                first = exprlist.children[0] if exprlist.children else None
                names = [str(n.children[0]) for n in _walk(first) if _is_ident(n)]
                if len(names) == 1:
                    bound.add(names[0])
        elif node.data == "literal":
            text = str(node.children[0])
            if _inexact_number(text):
                floats.append(text)
    return identifiers, bound, functions, floats


def _inexact_number(literal: str) -> bool:
    """A number literal with a fraction or an exponent (`1.5`, `.5`, `2e3`), which CEL reads as
    binary floating point; not `true`, a string, `0x1e`."""
    text = literal.lower()
    if not text or not (text[0].isdigit() or text[0] == ".") or text.startswith("0x"):
        return False
    return "." in text or "e" in text


def _is_ident(node: Any) -> bool:
    return isinstance(node, Tree) and node.data == "ident"


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A hint naming the closest candidate, in the style of SpiffWorkflow's messages."""
    match = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.6)
    return f"did you mean `{match[0]}`?" if match else None


@dataclass(frozen=True)
class Guard:
    """A compiled CEL expression over a document's data."""

    source: str
    names: frozenset[str]
    _program: Any = field(compare=False, repr=False)
    # Results by the values the expression reads (and the day): a guard is a pure function of
    # them, and a task list asks the same few questions of many documents (celpy interprets
    # its tree, ~0.5 ms an evaluation). Bounded: cleared when full.
    _memo: dict[tuple[Any, ...], bool] = field(
        default_factory=dict, compare=False, repr=False, hash=False
    )

    def evaluate(self, data: Mapping[str, Any], today: dt.date | None = None) -> bool:
        """True only when the expression evaluates to boolean true; errors count as false."""
        day = (today or dt.date.today()).isoformat()
        try:
            key = (day, *(_frozen(data.get(name)) for name in sorted(self.names)))
        except TypeError:  # a value CEL cannot take: evaluate (and fail) the long way
            key = None
        if key is not None and (known := self._memo.get(key)) is not None:
            return known
        holds = self._evaluate(data, day)
        if key is not None:
            if len(self._memo) >= MEMO_SIZE:
                self._memo.clear()
            self._memo[key] = holds
        return holds

    def _evaluate(self, data: Mapping[str, Any], day: str) -> bool:
        activation = {name: to_cel(data.get(name)) for name in self.names if name in data}
        activation["today"] = celtypes.StringType(day)
        try:
            result = self._program.evaluate(activation)
        except Exception as exc:  # celpy raises many types; a guard that errors does not hold
            log.info("guard %r did not evaluate: %s", self.source, exc)
            return False
        return isinstance(result, celtypes.BoolType) and bool(result)

    def value(self, data: Mapping[str, Any]) -> Decimal | None:
        """The expression's number (a `limit`); None when it is not a number or errors."""
        activation = {name: to_cel(data.get(name)) for name in self.names if name in data}
        try:
            result = self._program.evaluate(activation)
        except Exception as exc:  # celpy raises many types
            log.info("expression %r did not evaluate: %s", self.source, exc)
            return None
        if isinstance(result, Decimal):
            return result
        if isinstance(result, celtypes.IntType):
            return Decimal(int(result))
        return None


def compile_guard(source: str, names: Iterable[str] | None) -> Guard:
    """Compile `source`, refusing unknown identifiers, unknown functions and float literals.

    `names` None accepts any identifier (an expression over another flow's fields, checked
    against that flow when it is used)."""
    if not isinstance(source, str) or not source.strip():
        raise GuardError("the expression is empty")
    if len(source) > MAX_EXPRESSION_LENGTH:
        raise GuardError(f"the expression is longer than {MAX_EXPRESSION_LENGTH} characters")
    known = frozenset(names or ())
    try:
        tree = _ENV.compile(source)
    except celpy.CELParseError as exc:
        # str(exc) only repeats the source with a caret; the position and the cause say more.
        column = getattr(exc, "column", None)
        where = f" at character {column}" if column else ""
        token = getattr(exc.__context__, "token", None)
        char = getattr(exc.__context__, "char", None)
        if token is not None and token.type == "$END":
            hint = "the expression ends too early"
        elif token is not None:
            hint = f"unexpected `{token}`"
        elif char is not None:
            hint = f"unexpected `{char}`"
        else:
            hint = None
        raise GuardError(f"the expression `{source}` does not parse{where}", hint) from exc
    except RecursionError as exc:
        raise GuardError("the expression is nested too deeply") from exc
    identifiers, bound, functions, floats = _inspect(tree)
    if names is None:
        known = frozenset(identifiers - bound - EXTRA_NAMES)
    if floats:
        raise GuardError(
            f"`{floats[0]}` is a floating-point number; money and quantities are exact",
            f'write decimal("{floats[0]}") or an integer',
        )
    for fn in sorted(functions - MACROS):
        if fn not in ALLOWED_FUNCTIONS:
            raise GuardError(
                f"unknown function `{fn}` in `{source}`",
                did_you_mean(fn, ALLOWED_FUNCTIONS) or "see docs/flows.md for the functions",
            )
    for name in sorted(identifiers - bound - EXTRA_NAMES):
        if name not in known:
            raise GuardError(
                f"`{name}` in `{source}` is not a field of this flow",
                did_you_mean(name, known | EXTRA_NAMES),
            )
    program = _ENV.program(tree, functions=FUNCTIONS)
    return Guard(source=source, names=frozenset(identifiers & known), _program=program)


def _frozen(value: Any) -> Any:
    """A hashable, type-exact key for a data value (True is not 1, 1.0 is not 1.00)."""
    if value is None:
        return None
    if isinstance(value, bool | int | str):
        return (type(value).__name__, value)
    if isinstance(value, Decimal):
        return ("decimal", str(value))
    if isinstance(value, dt.date):
        return ("date", value.isoformat())
    if isinstance(value, Mapping):
        return ("map", tuple(sorted((str(k), _frozen(v)) for k, v in value.items())))
    if isinstance(value, list | tuple):
        return ("list", tuple(_frozen(v) for v in value))
    raise TypeError(f"cannot use {type(value).__name__} in an expression")


def to_cel(value: Any) -> Any:
    """Convert document data (JSON-like, with Decimal money) to CEL values; Decimal stays exact."""
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if isinstance(value, int):
        return celtypes.IntType(value)
    if isinstance(value, Decimal):
        return value
    if isinstance(value, str):
        return celtypes.StringType(value)
    if isinstance(value, dt.date):
        return celtypes.StringType(value.isoformat())
    if isinstance(value, Mapping):
        return celtypes.MapType({celtypes.StringType(k): to_cel(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return celtypes.ListType([to_cel(v) for v in value])
    if value is None:
        return None
    raise TypeError(f"cannot use {type(value).__name__} in an expression")
