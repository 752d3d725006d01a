"""The shape of a definition: which keys may appear where, and the type of each value.

`check_shape(tree, path)` returns every problem it finds (misspelt keys get a "did you mean"),
each on the line of the key concerned. Meaning (do the states exist, are the roles known, …) is
`validate`'s job and runs only on a tree whose shape is right.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from workflow.calendar import parse_duration
from workflow.definitions.loader import YamlList, YamlMap
from workflow.errors import Problem
from workflow.fields import FIELD_TYPES
from workflow.guards import did_you_mean

TOP_REQUIRED = ("name", "title", "fields", "initial", "states", "transitions", "example")
TOP_OPTIONAL = ("description", "overdue", "visible_to", "number_prefix", "bulk")
NUMBER_PREFIX = re.compile(r"[A-Z][A-Z0-9]{0,7}")
FIELD_COMMON = ("type", "required", "label", "help", "default", "unique")
FIELD_TYPE_KEYS: dict[str, tuple[str, ...]] = {
    "string": ("min_length", "max_length"),
    "text": ("min_length", "max_length"),
    "integer": ("min", "max", "references"),
    "decimal": ("min", "max", "places"),
    "boolean": (),
    "date": (),
    "choice": ("choices", "choice_labels"),
    "table": ("columns", "min_rows", "max_rows"),
}
FIELD_KEYS = FIELD_COMMON + tuple(
    dict.fromkeys(key for keys in FIELD_TYPE_KEYS.values() for key in keys)
)
STATE_KEYS = (
    "label",
    "editable_by",
    "editable_fields",
    "review",
    "on_approve",
    "on_reject",
    "final",
    "owner_only",
    "void",
    "sla",
    "escalate",
)
REVIEW_KEYS = (
    "required",
    "roles",
    "allow_earlier_reviewers",
    "require_each_role",
    "checklist",
    "blind",
)
CHECKLIST_KEYS = ("id", "label")
TRANSITION_REQUIRED = ("action", "from", "to", "roles")
TRANSITION_OPTIONAL = ("when", "checks", "label")
ROUTE_KEYS = ("to", "when")
CHECK_KEYS = ("rule", "message")
OVERDUE_KEYS = ("field", "states")
REFERENCE_KEYS = ("states", "amount", "limit", "reverses_in")
ESCALATE_KEYS = ("after", "notify")
LABEL_KEYS = ("zh", "en", "zh_Hant")
MAX_PLACES = 6


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | Decimal):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__  # pragma: no cover - the loader produces nothing else


class _Shape:
    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[Problem] = []

    def problem(self, line: int | None, message: str, hint: str | None = None) -> None:
        self.problems.append(Problem(self.path, line, message, hint))

    # --- building blocks ----------------------------------------------------------------

    def keys(
        self,
        mapping: YamlMap,
        what: str,
        required: tuple[str, ...],
        optional: tuple[str, ...],
        misplaced: dict[str, str] | None = None,
    ) -> None:
        """Report unknown keys (with a did-you-mean) and missing required keys."""
        allowed = required + optional
        for key in mapping:
            if key in allowed:
                continue
            line = mapping.line_of(key)
            if misplaced and key in misplaced:
                self.problem(line, f"`{key}` does not apply to {what}", misplaced[key])
                continue
            suggestion = did_you_mean(key, allowed)
            message = f"unknown key `{key}` in {what}"
            if suggestion:
                message += f"; {suggestion}"
            self.problem(line, message, "allowed keys: " + ", ".join(allowed))
        for key in required:
            if key not in mapping:
                self.problem(mapping.line, f"{what} has no `{key}`")

    def is_mapping(self, value: Any, line: int, what: str) -> bool:
        if isinstance(value, YamlMap):
            return True
        self.problem(line, f"{what} must be a mapping of `key: value` lines, not {_kind(value)}")
        return False

    def text(self, mapping: YamlMap, key: str, what: str) -> None:
        value = mapping.get(key)
        if key in mapping and (not isinstance(value, str) or not value.strip()):
            hint = "put quotes around it" if value is not None else None
            self.problem(
                mapping.line_of(key), f"`{key}` of {what} must be text, not {_kind(value)}", hint
            )

    def boolean(self, mapping: YamlMap, key: str, what: str) -> None:
        value = mapping.get(key)
        if key in mapping and not isinstance(value, bool):
            self.problem(
                mapping.line_of(key),
                f"`{key}` of {what} must be true or false, not {_kind(value)} `{value}`",
                "write true or false; yes/no/on/off are text here",
            )

    def integer(
        self, mapping: YamlMap, key: str, what: str, low: int | None = 0, high: int | None = None
    ) -> None:
        if key not in mapping:
            return
        value = mapping[key]
        if not isinstance(value, int) or isinstance(value, bool):
            shown = f"`{value}`" if isinstance(value, Decimal) else _kind(value)
            self.problem(
                mapping.line_of(key), f"`{key}` of {what} must be a whole number, not {shown}"
            )
        elif (low is not None and value < low) or (high is not None and value > high):
            bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
            self.problem(mapping.line_of(key), f"`{key}` of {what} must be {bounds}, not {value}")

    def number(self, mapping: YamlMap, key: str, what: str) -> None:
        value = mapping.get(key)
        if key in mapping and (not isinstance(value, int | Decimal) or isinstance(value, bool)):
            self.problem(
                mapping.line_of(key), f"`{key}` of {what} must be a number, not {_kind(value)}"
            )

    def label(self, mapping: YamlMap, key: str, what: str) -> None:
        if key not in mapping:
            return
        value = mapping[key]
        line = mapping.line_of(key)
        if isinstance(value, str) and value.strip():
            return
        if not isinstance(value, YamlMap):
            self.problem(
                line,
                f"`{key}` of {what} must be text or `{{zh: …, en: …}}`, not {_kind(value)}",
            )
            return
        self.keys(value, f"`{key}` of {what}", (), LABEL_KEYS)
        if not any(lang in value for lang in ("zh", "en")):
            self.problem(line, f"`{key}` of {what} needs `zh` or `en` text")
        for lang in LABEL_KEYS:
            self.text(value, lang, f"`{key}` of {what}")

    def choice_labels(self, spec: YamlMap, what: str) -> None:
        """`choice_labels`: a choice → its English text, or `{zh: …, en: …}`."""
        if "choice_labels" not in spec:
            return
        labels = spec["choice_labels"]
        if not isinstance(labels, YamlMap):
            self.problem(
                spec.line_of("choice_labels"),
                f"`choice_labels` of {what} must be a mapping, not {_kind(labels)}",
                "e.g. {交通: Transport, 住宿: Lodging}",
            )
            return
        choices = spec.get("choices")
        listed = {str(c) for c in choices} if isinstance(choices, list) else set()
        for key in labels:
            if str(key) not in listed:
                self.problem(
                    labels.line_of(key),
                    f"`{key}` in `choice_labels` of {what} is not one of its choices",
                    "label only the values listed in `choices`",
                )
            self.label(labels, key, f"choice `{key}` of {what}")

    def names(
        self, mapping: YamlMap, key: str, what: str, *, nonempty: bool = True
    ) -> YamlList | None:
        """A list of names (roles, states, choices): text items, by default at least one."""
        if key not in mapping:
            return None
        value = mapping[key]
        line = mapping.line_of(key)
        if not isinstance(value, YamlList):
            self.problem(
                line, f"`{key}` of {what} must be a list such as [a, b], not {_kind(value)}"
            )
            return None
        if nonempty and not value:
            self.problem(line, f"`{key}` of {what} is an empty list")
        for index, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                self.problem(
                    value.line_of(index),
                    f"`{key}` of {what}: item {index + 1} must be text, not {_kind(item)}",
                    "put quotes around it",
                )
        return value

    # --- the parts of a definition --------------------------------------------------------

    def flow(self, tree: Any) -> None:
        if not self.is_mapping(tree, getattr(tree, "line", 1), "a definition"):
            return
        self.keys(tree, "the definition", TOP_REQUIRED, TOP_OPTIONAL)
        self.text(tree, "name", "the flow")
        self.label(tree, "title", "the flow")
        self.label(tree, "description", "the flow")
        self.text(tree, "initial", "the flow")
        if "fields" in tree:
            self.fields(tree["fields"], tree.line_of("fields"), None)
        if "states" in tree:
            self.states(tree["states"], tree.line_of("states"))
        if "transitions" in tree:
            self.transitions(tree["transitions"], tree.line_of("transitions"))
        if "overdue" in tree:
            self.overdue(tree["overdue"], tree.line_of("overdue"))
        self.names(tree, "visible_to", "the flow")
        self.number_prefix(tree)
        self.boolean(tree, "bulk", "the flow")
        if "example" in tree:
            self.is_mapping(tree["example"], tree.line_of("example"), "`example`")

    def number_prefix(self, tree: YamlMap) -> None:
        # Said on the phone and printed on paper: short, upper-case letters and digits only.
        value = tree.get("number_prefix")
        if "number_prefix" in tree and (
            not isinstance(value, str) or not NUMBER_PREFIX.fullmatch(value)
        ):
            self.problem(
                tree.line_of("number_prefix"),
                f"`number_prefix` of the flow must be 1 to 8 upper-case letters or digits "
                f"starting with a letter, not {_kind(value)} `{value}`",
                "for example: number_prefix: FH",
            )

    def fields(self, fields: Any, line: int, table: str | None) -> None:
        what = f"`columns` of table `{table}`" if table else "`fields`"
        if not self.is_mapping(fields, line, what):
            return
        if not fields:
            self.problem(line, f"{what} is empty; a flow needs at least one field")
        for name, spec in fields.items():
            self.field(name, spec, fields.line_of(name), table)

    def field(self, name: str, spec: Any, line: int, table: str | None) -> None:
        what = f"column `{name}` of table `{table}`" if table else f"field `{name}`"
        if not self.is_mapping(spec, line, what):
            return
        kind = spec.get("type")
        if "type" not in spec:
            self.problem(spec.line, f"{what} has no `type`", "one of: " + ", ".join(FIELD_TYPES))
            self.keys(spec, what, (), FIELD_KEYS)
            return
        if kind not in FIELD_TYPES:
            suggestion = did_you_mean(str(kind), FIELD_TYPES) if isinstance(kind, str) else None
            message = f"unknown type `{kind}` for {what}"
            self.problem(
                spec.line_of("type"),
                f"{message}; {suggestion}" if suggestion else message,
                "one of: " + ", ".join(FIELD_TYPES),
            )
            self.keys(spec, what, (), FIELD_KEYS)
            return
        if table and kind == "table":
            self.problem(
                spec.line_of("type"),
                f"{what} cannot itself be a table",
                "tables hold simple columns only; add another table field instead",
            )
            return
        own = FIELD_TYPE_KEYS[kind]
        misplaced = {
            key: f"`{key}` is for fields of type "
            + ", ".join(t for t, keys in FIELD_TYPE_KEYS.items() if key in keys)
            for key in FIELD_KEYS
            if key not in FIELD_COMMON and key not in own
        }
        self.keys(spec, f"{what} (type `{kind}`)", (), FIELD_COMMON + own, misplaced)
        self.boolean(spec, "required", what)
        self.label(spec, "label", what)
        self.label(spec, "help", what)
        if "unique" in spec:
            self.unique(spec, what)
        if kind in ("string", "text"):
            self.integer(spec, "min_length", what, 0)
            self.integer(spec, "max_length", what, 1)
        elif kind == "integer":
            self.integer(spec, "min", what, None)
            self.integer(spec, "max", what, None)
            if "references" in spec:
                self.references(spec["references"], spec.line_of("references"), what)
        elif kind == "decimal":
            self.number(spec, "min", what)
            self.number(spec, "max", what)
            self.integer(spec, "places", what, 0, MAX_PLACES)
        elif kind == "choice":
            if "choices" not in spec:
                self.problem(spec.line, f"{what} has no `choices`", "list them: [a, b, c]")
            self.names(spec, "choices", what)
            self.choice_labels(spec, what)
        elif kind == "table":
            self.integer(spec, "min_rows", what, 0)
            self.integer(spec, "max_rows", what, 1)
            if "columns" not in spec:
                self.problem(spec.line, f"{what} has no `columns`")
            else:
                self.fields(spec["columns"], spec.line_of("columns"), name)

    def references(self, node: Any, line: int, what: str) -> None:
        what = f"`references` of {what}"
        if not self.is_mapping(node, line, what):
            return
        self.keys(node, what, ("flow",), REFERENCE_KEYS)
        for key in ("flow", "amount", "limit"):
            self.text(node, key, what)
        self.names(node, "states", what)
        self.names(node, "reverses_in", what)

    def unique(self, spec: YamlMap, what: str) -> None:
        value = spec["unique"]
        if isinstance(value, bool):
            return
        if isinstance(value, YamlMap):
            self.keys(value, f"`unique` of {what}", ("across",), ())
            self.names(value, "across", f"`unique` of {what}")
            return
        self.problem(
            spec.line_of("unique"),
            f"`unique` of {what} must be true, false or `{{across: [flows]}}`, not {_kind(value)}",
        )

    def states(self, states: Any, line: int) -> None:
        if not self.is_mapping(states, line, "`states`"):
            return
        if not states:
            self.problem(line, "`states` is empty")
        for name in list(states):
            spec = states[name]
            if spec is None:  # `approved:` with nothing after it is a state with no options
                spec = states[name] = YamlMap(states.line_of(name))
            self.state(name, spec, states.line_of(name))

    def state(self, name: str, spec: Any, line: int) -> None:
        what = f"state `{name}`"
        if not self.is_mapping(spec, line, what):
            return
        self.keys(spec, what, (), STATE_KEYS)
        self.label(spec, "label", what)
        self.names(spec, "editable_by", what)
        self.names(spec, "editable_fields", what)
        self.boolean(spec, "final", what)
        self.boolean(spec, "owner_only", what)
        self.boolean(spec, "void", what)
        self.text(spec, "on_reject", what)
        self.duration(spec, "sla", what)
        self.escalate(spec, what)
        if "review" in spec:
            review = spec["review"]
            review_what = f"the review of {what}"
            if self.is_mapping(review, spec.line_of("review"), f"`review` of {what}"):
                self.keys(review, review_what, ("required", "roles"), REVIEW_KEYS[2:])
                self.boolean(review, "blind", review_what)
                if "checklist" in review:
                    self.checklist(review["checklist"], review.line_of("checklist"), review_what)
                self.integer(review, "required", review_what, None)
                self.names(review, "roles", review_what)
                self.boolean(review, "allow_earlier_reviewers", review_what)
                self.boolean(review, "require_each_role", review_what)
        if "on_approve" in spec:
            routes = spec["on_approve"]
            route_line = spec.line_of("on_approve")
            if isinstance(routes, str) and routes.strip():
                return
            if not isinstance(routes, YamlList) or not routes:
                self.problem(
                    route_line,
                    f"`on_approve` of {what} must be a state name or a list of "
                    f"`{{to: state, when: condition}}`, not {_kind(routes)}",
                )
                return
            for index, route in enumerate(routes):
                route_what = f"route {index + 1} of `on_approve` of {what}"
                if self.is_mapping(route, routes.line_of(index), route_what):
                    self.keys(route, route_what, ("to",), ("when",))
                    self.text(route, "to", route_what)
                    self.text(route, "when", route_what)

    def checklist(self, items: Any, line: int, what: str) -> None:
        if not isinstance(items, YamlList) or not items:
            self.problem(
                line,
                f"`checklist` of {what} must be a list of `{{id: name, label: {{zh, en}}}}`",
            )
            return
        for index, item in enumerate(items):
            item_what = f"checklist item {index + 1} of {what}"
            if self.is_mapping(item, items.line_of(index), item_what):
                self.keys(item, item_what, CHECKLIST_KEYS, ())
                self.text(item, "id", item_what)
                self.label(item, "label", item_what)

    def transitions(self, transitions: Any, line: int) -> None:
        if not isinstance(transitions, YamlList):
            self.problem(
                line,
                "`transitions` must be a list (lines starting with `- `), "
                f"not {_kind(transitions)}",
            )
            return
        for index, item in enumerate(transitions):
            item_line = transitions.line_of(index)
            if not self.is_mapping(item, item_line, f"transition {index + 1}"):
                continue
            action = item.get("action")
            what = f"transition `{action}`" if isinstance(action, str) else "a transition"
            self.keys(item, what, TRANSITION_REQUIRED, TRANSITION_OPTIONAL)
            self.text(item, "action", what)
            self.text(item, "to", what)
            self.text(item, "when", what)
            self.label(item, "label", what)
            self.names(item, "roles", what)
            source = item.get("from")
            if isinstance(source, YamlList):
                self.names(item, "from", what)
            elif "from" in item and (not isinstance(source, str) or not source.strip()):
                self.problem(
                    item.line_of("from"),
                    f"`from` of {what} must be a state, a list of states or '*', "
                    f"not {_kind(source)}",
                )
            if "checks" in item:
                checks = item["checks"]
                if not isinstance(checks, YamlList):
                    self.problem(
                        item.line_of("checks"),
                        f"`checks` of {what} must be a list of `{{rule: …, message: …}}`",
                    )
                    continue
                for number, check in enumerate(checks, start=1):
                    check_what = f"check {number} of {what}"
                    if self.is_mapping(check, checks.line_of(number - 1), check_what):
                        self.keys(check, check_what, ("rule",), ("message",))
                        self.text(check, "rule", check_what)
                        self.label(check, "message", check_what)

    def overdue(self, overdue: Any, line: int) -> None:
        if not self.is_mapping(overdue, line, "`overdue`"):
            return
        self.keys(overdue, "`overdue`", OVERDUE_KEYS, ("escalate",))
        self.text(overdue, "field", "`overdue`")
        self.names(overdue, "states", "`overdue`")
        self.escalate(overdue, "`overdue`")

    def duration(self, mapping: YamlMap, key: str, what: str) -> None:
        value = mapping.get(key)
        if key in mapping and (not isinstance(value, str) or parse_duration(value) is None):
            self.problem(
                mapping.line_of(key),
                f"`{key}` of {what} must be a duration such as 2d (two working days) or 30cd "
                f"(thirty calendar days), not {_kind(value)} `{value}`",
                "d counts working days by the Chinese calendar, cd calendar days",
            )

    def escalate(self, mapping: YamlMap, what: str) -> None:
        if "escalate" not in mapping:
            return
        steps = mapping["escalate"]
        if not isinstance(steps, YamlList) or not steps:
            self.problem(
                mapping.line_of("escalate"),
                f"`escalate` of {what} must be a list of `{{after: 2d, notify: [role, …]}}`, "
                f"not {_kind(steps)}",
            )
            return
        for index, step in enumerate(steps):
            step_what = f"escalation {index + 1} of {what}"
            if self.is_mapping(step, steps.line_of(index), step_what):
                self.keys(step, step_what, ESCALATE_KEYS, ())
                self.duration(step, "after", step_what)
                self.names(step, "notify", step_what)


def check_shape(tree: Any, path: str = "<text>") -> list[Problem]:
    """Every shape problem of a loaded definition (empty when the shape is right)."""
    shape = _Shape(path)
    shape.flow(tree)
    return shape.problems
