"""Strict YAML for flow definitions: a small, safe subset of YAML, with the line of every key.

What PyYAML's `safe_load` does by default is wrong for definitions that people edit by hand and
upload through a browser (see DESIGN.md, "Traps measured on this stack"), so this module:

- refuses text over MAX_DEFINITION_BYTES and nesting deeper than MAX_DEPTH *before* parsing,
  with a character scan that cannot recurse (the C loader segfaults on 50,000-deep nesting and
  the Python composer raises RecursionError at about 1,000);
- parses with the pure-Python `yaml.SafeLoader` machinery (never the C loader, never an unsafe
  loader) and refuses anchors, aliases, merge keys, explicit tags, several documents and
  duplicate keys while composing, so an alias bomb is refused at its first anchor;
- resolves scalars itself, YAML 1.2 style: only `true`/`false` are booleans (`yes`, `no`, `on`,
  `off` stay text), dates stay text, numbers with a fraction are `Decimal` built from their
  original text (never float), whole numbers are `int`, `null`/`~`/nothing is None.

Mappings come back as `YamlMap` (a dict with `.line` and `.key_lines`), sequences as `YamlList`
(a list with `.line` and `.item_lines`), scalars as plain Python values. Keys are always text.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from workflow.errors import DefinitionError

MAX_DEFINITION_BYTES = 64 * 1024
MAX_DEPTH = 20
MAX_NUMBER_LENGTH = 40

# YAML 1.2 core schema, minus the forms nobody writes in a business document (0x, 0o, .inf).
_NULL_RE = re.compile(r"(?:~|null|Null|NULL|)")
_TRUE_RE = re.compile(r"(?:true|True|TRUE)")
_FALSE_RE = re.compile(r"(?:false|False|FALSE)")
_INT_RE = re.compile(r"[-+]?[0-9]+", re.ASCII)
_FRACTION_RE = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?", re.ASCII)
_BLOCK_SCALAR_RE = re.compile(r"[|>][-+0-9]*\s*(?:#.*)?")
# After one of these (or at the start of a line) a `[`, `{`, quote or block indicator starts a
# new token; elsewhere it is part of a plain scalar such as `a[1]` or `don't`.
_TOKEN_STARTS = frozenset(":-?[{,")


class YamlMap(dict):  # type: ignore[type-arg]
    """A YAML mapping: a dict that remembers its own line and the line of each key (1-based)."""

    line: int
    key_lines: dict[str, int]

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.key_lines = {}

    def line_of(self, key: str) -> int:
        """The line of `key`, or the mapping's own line when the key is absent."""
        return self.key_lines.get(key, self.line)


class YamlList(list):  # type: ignore[type-arg]
    """A YAML sequence: a list that remembers its own line and the line of each item (1-based)."""

    line: int
    item_lines: list[int]

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.item_lines = []

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if 0 <= index < len(self.item_lines) else self.line


class _Refused(Exception):
    def __init__(self, line: int | None, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.message = message
        self.hint = hint


def load_yaml(text: str, path: str = "<text>") -> Any:
    """Parse one definition; raise DefinitionError naming the line of the first problem."""
    if not isinstance(text, str):
        raise DefinitionError.single(path, None, "the definition must be text")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise DefinitionError.single(path, None, "the definition is not valid UTF-8 text") from None
    if size > MAX_DEFINITION_BYTES:
        raise DefinitionError.single(
            path,
            None,
            f"the definition is {size} bytes; at most {MAX_DEFINITION_BYTES} are accepted",
            "split long help texts or descriptions; a flow is rarely more than a few KiB",
        )
    try:
        _prescan(text)
        loader = _StrictLoader(text)
        try:
            root = loader.compose_single()
        finally:
            loader.dispose()
        if root is None:
            raise _Refused(1, "the definition is empty")
        return _construct(root)
    except _Refused as exc:
        raise DefinitionError.single(path, exc.line, exc.message, exc.hint) from None
    except yaml.MarkedYAMLError as exc:
        raise DefinitionError.single(path, *_describe(exc)) from None
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        raise DefinitionError.single(
            path,
            line,
            f"the text contains the control character U+{exc.character:04X}",
            "remove it; definitions are plain text",
        ) from None
    except yaml.YAMLError as exc:  # pragma: no cover - every other PyYAML error is marked
        raise DefinitionError.single(path, None, f"the YAML does not parse: {exc}") from None


def _describe(exc: yaml.MarkedYAMLError) -> tuple[int | None, str, str | None]:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else None
    problem = (exc.problem or exc.context or "syntax error").strip()
    if "\\t" in problem or "tab" in problem:
        return line, f"the YAML does not parse: {problem}", "indent with spaces, not tabs"
    return (
        line,
        f"the YAML does not parse: {problem}",
        "check the indentation, and put quotes around values containing `: `, `#` or `[`",
    )


# --- the pre-scan: a flat loop over characters, nothing here can recurse ---------------------


def _prescan(text: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH, measured without parsing.

    Counts open `[`/`{` (outside quotes, comments and block scalars) plus block indentation
    levels (including compact `- - -` sequences). It errs on the side of counting a little too
    much; the composer below enforces the exact limit.
    """
    flow = 0
    indents: list[int] = []
    quote: str | None = None
    block_scalar_parent: int | None = None  # the indent of the key that opened `|` / `>`
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.lstrip(" ")
        indent = len(line) - len(stripped)
        if block_scalar_parent is not None:
            if not stripped.strip() or indent > block_scalar_parent:
                continue
            block_scalar_parent = None
        if quote is None and flow == 0:
            if not stripped.strip() or stripped.startswith("#"):
                continue
            while indents and indents[-1] >= indent:
                indents.pop()
            indents.append(indent)
            rest = stripped
            column = indent
            while rest[:2] == "- ":  # compact nested sequences: `- - - item`
                spaces = len(rest[1:]) - len(rest[1:].lstrip(" "))
                column += 1 + spaces
                rest = rest[1 + spaces :]
                indents.append(column)
            if len(indents) > MAX_DEPTH:
                raise _Refused(
                    lineno, f"the definition is nested more than {MAX_DEPTH} levels deep"
                )
        previous = "\n"  # start of line counts as the start of a token
        index = 0
        while index < len(line):
            char = line[index]
            if quote is not None:
                if quote == '"' and char == "\\":
                    index += 2
                    continue
                if char == quote:
                    if quote == "'" and line[index + 1 : index + 2] == "'":
                        index += 2
                        continue
                    quote = None
                    previous = char
                index += 1
                continue
            if char == "#" and (index == 0 or line[index - 1] in " \t"):
                break
            token_start = previous in _TOKEN_STARTS or previous == "\n"
            structural = False
            if char in "\"'" and token_start:
                quote = char
            elif char in "[{" and (token_start or flow):
                flow += 1
                structural = True
                if flow + len(indents) > MAX_DEPTH:
                    raise _Refused(
                        lineno, f"the definition is nested more than {MAX_DEPTH} levels deep"
                    )
            elif char in "]}" and flow:
                flow -= 1
                structural = True
            elif char == "," and flow:
                structural = True
            elif char in ":-?":
                structural = line[index + 1 : index + 2] in ("", " ", "\t")
            elif (
                char in "|>"
                and flow == 0
                and token_start
                and _BLOCK_SCALAR_RE.fullmatch(line[index:].rstrip())
            ):
                block_scalar_parent = indent
                break
            if char not in " \t":
                # Only indicators start a new token; `x[` or `a,[` inside plain text do not.
                previous = char if structural else "x"
            index += 1


# --- composing: PyYAML's pure-Python scanner and parser, with a stricter composer -----------


class _StrictLoader(yaml.SafeLoader):
    """The pure-Python SafeLoader, composing nodes only; resolution is done by `_scalar`."""

    yaml_implicit_resolvers: dict[str, Any] = {}  # noqa: RUF012 - class attribute of PyYAML

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_single(self) -> Node | None:
        self.get_event()  # STREAM-START
        if self.check_event(StreamEndEvent):
            return None
        document = self.compose_document()
        if not self.check_event(StreamEndEvent):
            event = self.get_event()
            raise _Refused(
                event.start_mark.line + 1,
                "a second YAML document (`---`) follows the first",
                "a definition is exactly one document; remove the `---` line and what follows",
            )
        return document

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        event = self.peek_event()
        line = event.start_mark.line + 1
        if isinstance(event, AliasEvent):
            raise _Refused(
                line,
                f"aliases (`*{event.anchor}`) are not allowed",
                "write the value out in full where it is needed",
            )
        if event.anchor is not None:
            raise _Refused(
                line,
                f"anchors (`&{event.anchor}`) are not allowed",
                "write the value out in full where it is needed",
            )
        tag = getattr(event, "tag", None)
        if tag is not None:
            shown = tag.replace("tag:yaml.org,2002:", "!!")
            raise _Refused(
                line,
                f"tags (`{shown}`) are not allowed",
                "write plain values; put quotes around text that should stay text",
            )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(line, f"the definition is nested more than {MAX_DEPTH} levels deep")
            if isinstance(event, ScalarEvent):
                return self.compose_scalar_node(None)
            if isinstance(event, SequenceStartEvent):
                return self.compose_sequence_node(None)
            if isinstance(event, MappingStartEvent):
                return self.compose_mapping_node(None)
            raise _Refused(line, "unexpected YAML structure")  # pragma: no cover
        finally:
            self._depth -= 1


# --- constructing plain Python values with line marks --------------------------------------


def _construct(node: Node) -> Any:
    """Turn a node into YamlMap / YamlList / scalar. Depth is bounded by MAX_DEPTH already."""
    line = node.start_mark.line + 1
    if isinstance(node, ScalarNode):
        return _scalar(node)
    if isinstance(node, SequenceNode):
        items = YamlList(line)
        for child in node.value:
            items.append(_construct(child))
            items.item_lines.append(child.start_mark.line + 1)
        return items
    if isinstance(node, MappingNode):
        mapping = YamlMap(line)
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if not isinstance(key_node, ScalarNode):
                raise _Refused(key_line, "a key must be a plain name, not a list or a mapping")
            key = key_node.value
            if key == "<<" and key_node.style is None:
                raise _Refused(
                    key_line,
                    "merge keys (`<<`) are not allowed",
                    "write the keys out in full in each place",
                )
            if key in mapping:
                raise _Refused(
                    key_line,
                    f"duplicate key `{key}` (first at line {mapping.key_lines[key]})",
                    "YAML would silently keep only the last one; remove one of them",
                )
            mapping[key] = _construct(value_node)
            mapping.key_lines[key] = key_line
        return mapping
    raise _Refused(line, "unexpected YAML structure")  # pragma: no cover


def _scalar(node: ScalarNode) -> Any:
    value: str = node.value
    if node.style is not None:  # quoted or block scalar: always text
        return value
    if _NULL_RE.fullmatch(value):
        return None
    if _TRUE_RE.fullmatch(value):
        return True
    if _FALSE_RE.fullmatch(value):
        return False
    if _INT_RE.fullmatch(value) or _FRACTION_RE.fullmatch(value):
        if len(value) > MAX_NUMBER_LENGTH:
            raise _Refused(
                node.start_mark.line + 1,
                f"the number `{value[:20]}…` is longer than {MAX_NUMBER_LENGTH} characters",
            )
        if _INT_RE.fullmatch(value):
            return int(value)
        try:
            return Decimal(value)
        except InvalidOperation:  # pragma: no cover - the regex only lets numbers through
            return value
    return value


__all__ = [
    "MAX_DEFINITION_BYTES",
    "MAX_DEPTH",
    "YamlList",
    "YamlMap",
    "load_yaml",
]
