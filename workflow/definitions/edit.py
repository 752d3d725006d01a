"""Structured edits of a definition's text: the changes managers make most, without touching YAML.

Each edit rewrites the text with ruamel.yaml's round-trip mode, so comments, key order, quoting
and flow style (`[a, b]`, `{zh: …, en: …}`) stay as the manager wrote them. The text is first
read by the strict loader (size, depth, no aliases or tags) so ruamel never sees what the
product refuses; the result is validated like any other text by whoever publishes it.
"""

from __future__ import annotations

import difflib
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from workflow.definitions.loader import load_yaml
from workflow.errors import DefinitionError

MAX_CHOICES = 200
_SPACES = re.compile(r"(?<=:) +")


@dataclass(frozen=True)
class ReviewPart:
    state: str
    required: int
    roles: tuple[str, ...]


@dataclass(frozen=True)
class TransitionPart:
    index: int
    action: str
    source: str
    dest: str
    roles: tuple[str, ...]


@dataclass(frozen=True)
class FieldPart:
    name: str
    type: str
    label_zh: str
    label_en: str
    required: bool
    choices: tuple[str, ...]


@dataclass(frozen=True)
class GuardPart:
    """A `when` condition with numbers in it (thresholds a manager may change)."""

    key: str  # "t:<transition index>" or "r:<state>:<route index>"
    where: str
    source: str
    numbers: tuple[str, ...]


@dataclass(frozen=True)
class Parts:
    """What the structured form offers for one text."""

    reviews: tuple[ReviewPart, ...]
    transitions: tuple[TransitionPart, ...]
    fields: tuple[FieldPart, ...]
    guards: tuple[GuardPart, ...] = ()


# A number in a guard: `decimal("5000.00")` or a bare literal (not inside a name or a string).
NUMBER_RE = re.compile(
    r'decimal\(\s*"(?P<dec>[0-9]+(?:\.[0-9]+)?)"\s*\)|(?<![\w."\'])(?P<num>[0-9]+(?:\.[0-9]+)?)(?![\w."\'])'
)
NUMBER_TEXT_RE = re.compile(r"[0-9]{1,15}(?:\.[0-9]{1,6})?", re.ASCII)


def guard_numbers(source: str) -> tuple[str, ...]:
    return tuple(m["dec"] or m["num"] for m in NUMBER_RE.finditer(source))


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def parts_of(text: str) -> Parts:
    """The review states, transitions and fields of a text the strict loader accepts."""
    tree = load_yaml(text)
    if not isinstance(tree, dict):
        return Parts((), (), ())
    reviews, transitions, fields = [], [], []
    states = tree.get("states")
    for name, node in (states or {}).items() if isinstance(states, dict) else ():
        review = node.get("review") if isinstance(node, dict) else None
        if isinstance(review, dict) and isinstance(review.get("required"), int):
            reviews.append(ReviewPart(name, review["required"], tuple(review.get("roles") or ())))
    items = tree.get("transitions")
    for index, item in enumerate(items if isinstance(items, list) else ()):
        if isinstance(item, dict) and isinstance(item.get("action"), str):
            source = item.get("from")
            transitions.append(
                TransitionPart(
                    index,
                    item["action"],
                    ", ".join(source) if isinstance(source, list) else _text(source),
                    _text(item.get("to")),
                    tuple(item.get("roles") or ()),
                )
            )
    declared = tree.get("fields")
    for name, node in (declared or {}).items() if isinstance(declared, dict) else ():
        if not isinstance(node, dict):
            continue
        label = node.get("label")
        zh = label.get("zh", "") if isinstance(label, dict) else _text(label)
        en = label.get("en", "") if isinstance(label, dict) else _text(label)
        fields.append(
            FieldPart(
                name,
                _text(node.get("type")),
                _text(zh),
                _text(en),
                node.get("required") is True,
                tuple(node.get("choices") or ()),
            )
        )
    guards = []
    for index, item in enumerate(items if isinstance(items, list) else ()):
        if isinstance(item, dict) and isinstance(item.get("when"), str):
            guards.append((f"t:{index}", f"{item.get('action')} #{index + 1}", item["when"]))
    for name, node in (states or {}).items() if isinstance(states, dict) else ():
        routes = node.get("on_approve") if isinstance(node, dict) else None
        for index, route in enumerate(routes if isinstance(routes, list) else ()):
            if isinstance(route, dict) and isinstance(route.get("when"), str):
                guards.append((f"r:{name}:{index}", f"{name} → {route.get('to')}", route["when"]))
    guard_parts = tuple(
        GuardPart(key, where, source, guard_numbers(source))
        for key, where, source in guards
        if guard_numbers(source)
    )
    return Parts(tuple(reviews), tuple(transitions), tuple(fields), guard_parts)


# --- the round trip -----------------------------------------------------------------------------
def _yaml() -> YAML:
    rt = YAML(typ="rt")
    rt.preserve_quotes = True
    rt.width = 4096  # never re-wrap a manager's long lines
    rt.indent(mapping=2, sequence=4, offset=2)
    return rt


def _round_trip(text: str, change: Any) -> str:
    load_yaml(text)  # the strict loader's limits first: ruamel never sees an alias bomb
    rt = _yaml()
    tree = rt.load(text)
    change(tree)
    out = io.StringIO()
    rt.dump(tree, out)
    return _keep_layout(text, out.getvalue())


def _normal(line: str) -> str:
    return _SPACES.sub(" ", line.rstrip())


def _keep_layout(before: str, after: str) -> str:
    """Lines the edit did not change keep their original spacing (ruamel drops the alignment
    spaces after `key:`), so the diff shows only what the manager changed."""
    old, new = before.splitlines(keepends=True), after.splitlines(keepends=True)
    matcher = difflib.SequenceMatcher(None, [_normal(x) for x in old], [_normal(x) for x in new])
    merged: list[str] = []
    for op, a1, a2, b1, b2 in matcher.get_opcodes():
        merged.extend(old[a1:a2] if op == "equal" else new[b1:b2])
    return "".join(merged)


def _refuse(message: str, hint: str | None = None) -> DefinitionError:
    return DefinitionError.single("<edit>", None, message, hint)


def _seq_like(old: Any, values: Sequence[str]) -> CommentedSeq:
    """A new list in the style of the one it replaces (`[a, b]` stays on one line)."""
    seq = CommentedSeq(values)
    if not isinstance(old, CommentedSeq) or old.fa.flow_style():
        seq.fa.set_flow_style()
    return seq


def _mapping(tree: Any, *path: str | int) -> Any:
    node = tree
    for key in path:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            raise _refuse(f"`{key}` is not in the definition") from None
    return node


def set_review(text: str, state: str, required: int, roles: Sequence[str]) -> str:
    """Set the quorum and the eligible roles of review state `state`."""

    def change(tree: Any) -> None:
        node = _mapping(tree, "states", state)
        review = node.get("review") if isinstance(node, CommentedMap) else None
        if not isinstance(review, CommentedMap):
            raise _refuse(f"state `{state}` is not a review state")
        review["required"] = int(required)
        review["roles"] = _seq_like(review.get("roles"), list(roles))

    return _round_trip(text, change)


def set_transition_roles(text: str, index: int, roles: Sequence[str]) -> str:
    """Set who may take transition number `index` (0-based, in definition order)."""

    def change(tree: Any) -> None:
        item = _mapping(tree, "transitions", index)
        if not isinstance(item, CommentedMap):
            raise _refuse(f"transition {index + 1} is not a mapping")
        item["roles"] = _seq_like(item.get("roles"), list(roles))

    return _round_trip(text, change)


def set_guard_numbers(text: str, key: str, values: Sequence[str]) -> str:
    """Replace the numbers of one `when` condition, in order (`decimal("…")` stays decimal)."""
    for value in values:
        if not NUMBER_TEXT_RE.fullmatch(value):
            raise _refuse(f"`{value}` is not a number", "write digits, e.g. 5000 or 5000.00")

    def change(tree: Any) -> None:
        kind, _, rest = key.partition(":")
        if kind == "t" and rest.isdigit():
            node = _mapping(tree, "transitions", int(rest))
        elif kind == "r" and rest.rpartition(":")[2].isdigit():
            state, _, index = rest.rpartition(":")
            node = _mapping(tree, "states", state, "on_approve", int(index))
        else:
            raise _refuse(f"`{key}` names no condition")
        old = node.get("when") if isinstance(node, CommentedMap) else None
        if not isinstance(old, str):
            raise _refuse(f"`{key}` has no `when`")
        numbers = iter(values)

        def swap(match: re.Match[str]) -> str:
            new = next(numbers, None)
            if new is None:
                return match[0]
            return f'decimal("{new}")' if match["dec"] is not None else new

        # Keep the scalar's quoting style ('…' stays single-quoted).
        node["when"] = type(old)(NUMBER_RE.sub(swap, old))

    return _round_trip(text, change)


def set_field(
    text: str,
    name: str,
    label_zh: str,
    label_en: str,
    required: bool,
    choices: Sequence[str] | None = None,
) -> str:
    """Set a field's label, whether it is required and (for a choice field) its choices."""
    if choices is not None and len(choices) > MAX_CHOICES:
        raise _refuse(f"at most {MAX_CHOICES} choices")

    def change(tree: Any) -> None:
        node = _mapping(tree, "fields", name)
        if not isinstance(node, CommentedMap):
            raise _refuse(f"field `{name}` is not a mapping")
        label = node.get("label")
        if isinstance(label, CommentedMap):
            label["zh"], label["en"] = label_zh, label_en
        else:
            new = CommentedMap([("zh", label_zh), ("en", label_en)])
            new.fa.set_flow_style()
            if "label" in node:
                node["label"] = new
            else:
                node.insert(1 if "type" in node else 0, "label", new)
        if required:
            node["required"] = True
        elif "required" in node:
            node["required"] = False
        if choices is not None and node.get("type") == "choice":
            node["choices"] = _seq_like(node.get("choices"), list(choices))
            labels = node.get("choice_labels")
            if isinstance(labels, dict):  # a value taken out takes its label along
                for gone in [k for k in labels if k not in set(choices)]:
                    del labels[gone]
                if not labels:
                    del node["choice_labels"]

    return _round_trip(text, change)
