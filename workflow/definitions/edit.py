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
class Parts:
    """What the structured form offers for one text."""

    reviews: tuple[ReviewPart, ...]
    transitions: tuple[TransitionPart, ...]
    fields: tuple[FieldPart, ...]


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
    return Parts(tuple(reviews), tuple(transitions), tuple(fields))


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

    return _round_trip(text, change)
