"""The meaning of a definition: names, roles, states, reachability, guards and the example.

`validate(tree, path)` runs on a tree whose shape `schema.check_shape` accepted. It collects as
many problems as it can (each with its line and, where it helps, a hint) and raises one
DefinitionError with all of them; otherwise it returns what `build` needs and should not work
out twice: the field specs, the compiled guards and the expanded transitions.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import PurePath
from typing import Any

from workflow.calendar import parse_duration
from workflow.definitions import graph
from workflow.definitions.loader import YamlList, YamlMap
from workflow.definitions.spec import FieldSpec, Label, ReferenceSpec
from workflow.errors import DefinitionError, InvalidData, Problem
from workflow.fields import clean_data, with_defaults
from workflow.guards import Guard, GuardError, compile_guard, did_you_mean
from workflow.roles import NON_ACTING_ROLES, ROLES

NAME_RE = re.compile(r"[a-z][a-z0-9_]*", re.ASCII)
MAX_NAME_LENGTH = 40
MIN_REVIEWERS = 2  # the product's rule: never fewer than two distinct people
MAX_REVIEWERS = 20
ANY_STATE = "*"
# Words that YAML 1.1 tools (and people) read as booleans or null.
YAML_WORDS = frozenset({"yes", "no", "on", "off", "true", "false", "null", "y", "n"})
# Names the state machine or the engine use on a document: a trigger named like one of these is
# silently not bound by `transitions`, or would shadow the review actions.
MACHINE_NAMES = frozenset(
    {
        "approve",
        "reject",
        "edit",
        "create",
        "delete",
        "update",
        "state",
        "trigger",
        "machine",
        "model",
        "data",
        "revision",
        "history",
    }
)
MACHINE_PREFIXES = ("to_", "is_", "may_")
# CEL keywords cannot be used as identifiers, and `today` is bound by the guard language.
EXPRESSION_NAMES = frozenset(
    {
        "in",
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
        "today",
    }
)


@dataclass(frozen=True)
class Validated:
    """What validation worked out, for `build` to assemble the spec from."""

    fields: tuple[FieldSpec, ...]
    guards: dict[str, Guard]
    # One (transition mapping, source state) per TransitionSpec, in definition order.
    expanded: tuple[tuple[YamlMap, str], ...]
    example: dict[str, Any]


def _stem(path: str) -> str | None:
    if not path or path.startswith("<"):
        return None
    return PurePath(path).stem


def _path_parts(key: str) -> list[str | int]:
    """`items[2].qty` → ["items", 2, "qty"] (the keys clean_data reports errors under)."""
    parts: list[str | int] = []
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", key):
        parts.append(int(index) if index else name)
    return parts


def _line_in(node: Any, key: str, fallback: int) -> int:
    """The line of the value at clean_data's error key inside a loaded mapping."""
    line = fallback
    for part in _path_parts(key):
        if isinstance(part, str) and isinstance(node, YamlMap) and part in node:
            line, node = node.line_of(part), node[part]
        elif isinstance(part, int) and isinstance(node, YamlList) and 0 < part <= len(node):
            line, node = node.line_of(part - 1), node[part - 1]
        else:
            break
    return line


class _Validator:
    def __init__(self, tree: YamlMap, path: str) -> None:
        self.tree = tree
        self.path = path
        self.problems: list[Problem] = []
        self.guards: dict[str, Guard] = {}
        self.field_names: frozenset[str] = frozenset()
        self.bad_fields: set[str] = set()
        self.unknown_states = False  # then reachability would only repeat the misspelling
        self.states: YamlMap = tree["states"]
        # Filled in by the checks, in order (see CHECKS).
        self.specs: tuple[FieldSpec, ...] = ()
        self.expanded: list[tuple[YamlMap, str]] = []
        self.edges: dict[str, list[str]] = {}
        self.dead_ends: set[str] = set()
        self.example_data: dict[str, Any] = {}

    def problem(self, line: int | None, message: str, hint: str | None = None) -> None:
        self.problems.append(Problem(self.path, line, message, hint))

    # --- names, roles, states, guards -----------------------------------------------------

    def name(self, kind: str, name: str, line: int, reserved: Iterable[str] = ()) -> bool:
        a_kind = f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"
        if not NAME_RE.fullmatch(name) or len(name) > MAX_NAME_LENGTH:
            self.problem(
                line,
                f"`{name}` is not a valid {kind} name",
                f"use lower-case letters a-z, digits and `_`, starting with a letter, at most "
                f"{MAX_NAME_LENGTH} characters",
            )
            return False
        if name in YAML_WORDS:
            self.problem(
                line,
                f"`{name}` cannot be {a_kind} name: YAML tools read it as true, false or null",
                "choose a word such as `accepted` or `declined`",
            )
            return False
        if name in reserved:
            why = (
                "guards use `today` and the expression language's keywords"
                if reserved is EXPRESSION_NAMES
                else "the engine and its state machine use it"
            )
            self.problem(
                line,
                f"`{name}` is reserved and cannot be {a_kind} name",
                f"{why}; choose another name",
            )
            return False
        if kind in ("action", "state") and name.startswith(MACHINE_PREFIXES):
            self.problem(
                line,
                f"`{name}` cannot be {a_kind} name: names starting with "
                + ", ".join(f"`{p}`" for p in MACHINE_PREFIXES)
                + " are reserved",
                "the state machine adds methods with these prefixes; choose another name",
            )
            return False
        return True

    def roles(self, roles: YamlList | None, line: int, context: str) -> None:
        for index, role in enumerate(roles or ()):
            role_line = roles.line_of(index) if roles is not None else line
            if role not in ROLES:
                suggestion = did_you_mean(role, ROLES)
                message = f"unknown role `{role}` in {context}"
                self.problem(
                    role_line,
                    f"{message}; {suggestion}" if suggestion else message,
                    "roles are: " + ", ".join(ROLES),
                )
            elif role in NON_ACTING_ROLES:
                self.problem(
                    role_line,
                    f"role `{role}` cannot act in {context}: it reads everything and acts on "
                    "nothing",
                    "remove it from this list",
                )
        if roles is not None and len(set(roles)) != len(roles):
            self.problem(line, f"a role is listed twice in {context}")

    def known_state(self, name: str, line: int, context: str) -> bool:
        if name in self.states:
            return True
        self.unknown_states = True
        suggestion = did_you_mean(name, self.states)
        message = f"unknown state `{name}` {context}"
        self.problem(
            line,
            f"{message}; {suggestion}" if suggestion else message,
            None if suggestion else "states are: " + ", ".join(self.states),
        )
        return False

    def guard(self, source: str, line: int, context: str) -> None:
        if source in self.guards:
            return
        try:
            self.guards[source] = compile_guard(source, self.field_names)
        except GuardError as exc:
            self.problem(line, f"{context}: {exc.message}", exc.hint)

    # --- the parts --------------------------------------------------------------------------

    def flow_name(self) -> None:
        name = self.tree["name"]
        line = self.tree.line_of("name")
        if self.name("flow", name, line):
            stem = _stem(self.path)
            if stem is not None and stem != name:
                self.problem(
                    line,
                    f"the flow is named `{name}` but its file is `{PurePath(self.path).name}`",
                    f"name the file `{name}.yaml` or the flow `{stem}`",
                )

    def fields(self, fields: YamlMap, table: str | None = None) -> tuple[FieldSpec, ...]:
        specs = []
        kind = "column" if table else "field"
        for name, node in fields.items():
            line = fields.line_of(name)
            before = len(self.problems)
            self.name(kind, name, line, EXPRESSION_NAMES)
            specs.append(self.field(name, node, table))
            if len(self.problems) > before and table is None:
                self.bad_fields.add(name)  # the example is not checked against a broken field
        return tuple(specs)

    def field(self, name: str, node: YamlMap, table: str | None) -> FieldSpec:
        kind = node["type"]
        what = f"column `{name}` of table `{table}`" if table else f"field `{name}`"
        bound: type = Decimal if kind == "decimal" else int
        low = bound(node["min"]) if node.get("min") is not None else None
        high = bound(node["max"]) if node.get("max") is not None else None
        for first, second, word in (
            ("min", "max", "`min` is above `max`"),
            ("min_length", "max_length", "`min_length` is above `max_length`"),
            ("min_rows", "max_rows", "`min_rows` is above `max_rows`"),
        ):
            a, b = node.get(first), node.get(second)
            if a is not None and b is not None and a > b:
                self.problem(node.line_of(first), f"{word} in {what}")
        choices = node.get("choices") or ()
        seen: set[str] = set()
        for index, choice in enumerate(choices):
            if choice in seen:
                self.problem(choices.line_of(index), f"choice `{choice}` is listed twice in {what}")
            seen.add(choice)
        columns = self.fields(node["columns"], name) if kind == "table" else ()
        spec = FieldSpec(
            name=name,
            type=kind,
            label=Label.of(node.get("label"), name),
            required=bool(node.get("required", False)),
            help=Label.of(node["help"], name) if node.get("help") is not None else None,
            min=low,
            max=high,
            places=node.get("places", 2),
            min_length=node.get("min_length"),
            max_length=node.get("max_length"),
            choices=tuple(dict.fromkeys(choices)),
            choice_labels=_choice_labels(node.get("choice_labels"), choices),
            columns=columns,
            min_rows=node.get("min_rows"),
            max_rows=node.get("max_rows", FieldSpec.max_rows),
            unique_across=self.unique(node, kind, what),
            references=self.references(node, table, what),
        )
        default = node.get("default")
        if default is None:
            return spec
        try:
            clean = clean_data([replace(spec, required=False)], {name: default})
        except InvalidData as exc:
            for key, messages in exc.errors.items():
                for message in messages:
                    self.problem(
                        _line_in(
                            node.get("default"), key.removeprefix(name), node.line_of("default")
                        ),
                        f"`default` of {what}: {message}",
                    )
            return spec
        return replace(spec, default=clean.get(name))

    def references(self, node: YamlMap, table: str | None, what: str) -> ReferenceSpec | None:
        """`references:` names a flow, the states its documents must be in, and optionally a
        `limit` (an expression over the referenced document's fields) that `amount` (a decimal
        field here; in a table, a decimal column of the same row) is counted against."""
        ref = node.get("references")
        if ref is None:
            return None
        where = f"`references` of {what}"
        self.name("flow", ref["flow"], ref.line_of("flow"), frozenset())
        states = tuple(ref.get("states") or ())
        for index, state in enumerate(states):
            self.name("state", state, ref["states"].line_of(index), frozenset())
        amount, limit = ref.get("amount"), ref.get("limit")
        if (amount is None) != (limit is None):
            self.problem(
                ref.line,
                f"{where} needs `amount` and `limit` together",
                "`amount`: what this document takes (a decimal field or column); `limit`: the "
                "most all live documents may take from the referenced one, e.g. `amount`",
            )
        if amount is not None:
            siblings = self.tree["fields"][table]["columns"] if table else self.tree["fields"]
            sibling = siblings.get(amount)
            if not isinstance(sibling, YamlMap) or sibling.get("type") != "decimal":
                kind = "column of the same table" if table else "field"
                names = [k for k, v in siblings.items() if v.get("type") == "decimal"]
                self.problem(
                    ref.line_of("amount"),
                    f"`amount` of {where} must name a decimal {kind}, not `{amount}`",
                    did_you_mean(amount, names) or "decimal ones: " + ", ".join(names),
                )
        if limit is not None:
            try:
                compile_guard(limit, None)
            except GuardError as exc:
                self.problem(ref.line_of("limit"), f"`limit` of {where}: {exc.message}", exc.hint)
        reverses = tuple(ref.get("reverses_in") or ())
        for index, state in enumerate(reverses):
            self.known_state(
                state, ref["reverses_in"].line_of(index), f"in `reverses_in` of {what}"
            )
        return ReferenceSpec(
            flow=ref["flow"],
            states=states,
            amount=amount,
            limit=limit,
            reverses_in=reverses,
        )

    def unique(self, node: YamlMap, kind: str, what: str) -> tuple[str, ...] | None:
        value = node.get("unique")
        if value is None or value is False:
            return None
        if kind in ("table", "boolean", "decimal", "text"):
            self.problem(
                node.line_of("unique"),
                f"`unique` does not apply to {what} of type `{kind}`",
                "use it on a string, integer, date or choice: an invoice or receipt number",
            )
            return None
        if value is True:
            return ()
        across = tuple(value.get("across") or ())
        for index, flow in enumerate(across):
            self.name("flow", flow, value["across"].line_of(index), frozenset())
        return across

    def state_names(self) -> None:
        for name in self.states:
            self.name("state", name, self.states.line_of(name), MACHINE_NAMES)

    def initial(self) -> None:
        initial = self.tree["initial"]
        line = self.tree.line_of("initial")
        if self.known_state(initial, line, "as `initial`") and not self.states[initial].get(
            "editable_by"
        ):
            self.problem(
                line,
                f"the initial state `{initial}` must be editable: documents are created there",
                f"give `{initial}` an `editable_by` list of the roles that fill in the document",
            )

    def editable_fields(self, name: str, node: YamlMap) -> None:
        """After the initial state, an editable state names the fields it may change: otherwise
        data that reviewers approved could be rewritten with no one looking again."""
        listed = node.get("editable_fields")
        line = node.line_of("editable_fields") if listed is not None else self.states.line_of(name)
        if listed is not None and "editable_by" not in node:
            self.problem(
                line,
                f"`editable_fields` of `{name}` without `editable_by`",
                "say who may edit with `editable_by`, or remove `editable_fields`",
            )
        for field_name in listed or ():
            if field_name not in self.field_names:
                hint = did_you_mean(field_name, self.field_names)
                message = f"unknown field `{field_name}` in `editable_fields` of state `{name}`"
                self.problem(line, message + (f"; {hint}" if hint else ""))
        if (
            "editable_by" in node
            and listed is None
            and self.tree.get("initial") in self.states  # else `initial` is the problem
            and name != self.tree.get("initial")
            and not node.get("final")
            and "review" not in node  # refused on its own: a review state is never editable
        ):
            self.problem(
                self.states.line_of(name),
                f"state `{name}` is editable after the document was created; list the fields "
                "that may change there in `editable_fields`",
                "otherwise approved data could be changed without another review",
            )

    def state(self, name: str, node: YamlMap) -> None:
        line = self.states.line_of(name)
        review = node.get("review")
        final = node.get("final", False)
        self.roles(node.get("editable_by"), node.line_of("editable_by"), f"state `{name}`")
        if review is not None:
            required = review["required"]
            if required < MIN_REVIEWERS:
                self.problem(
                    review.line_of("required"),
                    f"review state `{name}` requires {required} approval(s); the four-eyes rule "
                    f"needs at least {MIN_REVIEWERS} distinct people",
                    f"set `required: {MIN_REVIEWERS}` or more",
                )
            elif required > MAX_REVIEWERS:
                self.problem(
                    review.line_of("required"),
                    f"review state `{name}` requires {required} approvals; at most "
                    f"{MAX_REVIEWERS} are allowed",
                )
            self.roles(review["roles"], review.line_of("roles"), f"the review of state `{name}`")
            roles_listed = review["roles"] if isinstance(review["roles"], list) else []
            if review.get("require_each_role") and len(roles_listed) > required:
                self.problem(
                    review.line_of("require_each_role"),
                    f"review state `{name}` requires each of {len(roles_listed)} roles but only "
                    f"{required} approvals",
                    f"raise `required` to {len(roles_listed)} or list fewer roles",
                )
            for key, why in (
                ("on_approve", "where the document goes when enough people approve"),
                ("on_reject", "where the document goes when someone rejects it"),
            ):
                if key not in node:
                    self.problem(line, f"review state `{name}` has no `{key}`", f"say {why}")
            if "editable_by" in node:
                self.problem(
                    node.line_of("editable_by"),
                    f"review state `{name}` cannot be editable: reviewers approve exactly what "
                    "they saw",
                    "remove `editable_by`; edits happen in the state `on_reject` leads to",
                )
            if final:
                self.problem(
                    node.line_of("final"),
                    f"state `{name}` cannot be both final and a review state",
                    "a final state has no way out; remove `final: true` or the `review`",
                )
        else:
            for key in ("on_approve", "on_reject"):
                if key in node:
                    self.problem(
                        node.line_of(key),
                        f"`{key}` applies only to review states; `{name}` has no `review`",
                        "add a `review`, or use a transition to leave this state",
                    )
        self.editable_fields(name, node)
        if node.get("void") and not final:
            self.problem(
                node.line_of("void"),
                f"`void` of state `{name}` needs `final: true`",
                "a void state is where an abandoned document ends (withdrawn, cancelled)",
            )
        if review is not None and review.get("checklist"):
            self.checklist(name, review["checklist"])
        if node.get("owner_only") and (review is not None or final):
            self.problem(
                node.line_of("owner_only"),
                f"`owner_only` of state `{name}` has no meaning in a "
                + (
                    "review state: the owner never reviews their own document"
                    if review
                    else "final state: nobody acts there"
                ),
                "remove `owner_only`",
            )
        if final and "editable_by" in node:
            self.problem(
                node.line_of("editable_by"),
                f"final state `{name}` cannot be editable",
                "a finished document is not changed; remove `editable_by`",
            )
        if "on_reject" in node:
            target = node["on_reject"]
            context = f"in `on_reject` of state `{name}`"
            if self.known_state(target, node.line_of("on_reject"), context) and target == name:
                self.problem(node.line_of("on_reject"), f"`on_reject` of `{name}` leads back to it")
        if "on_approve" in node:
            self.routes(name, node)

    def routes(self, name: str, node: YamlMap) -> None:
        routes = node["on_approve"]
        line = node.line_of("on_approve")
        if isinstance(routes, str):
            context = f"in `on_approve` of state `{name}`"
            if self.known_state(routes, line, context) and routes == name:
                self.problem(line, f"`on_approve` of `{name}` leads back to it")
            return
        fallback: int | None = None
        for index, route in enumerate(routes, start=1):
            route_line = routes.line_of(index - 1)
            context = f"in route {index} of `on_approve` of state `{name}`"
            if self.known_state(route["to"], route.line_of("to"), context) and route["to"] == name:
                self.problem(route.line_of("to"), f"`on_approve` of `{name}` leads back to it")
            if fallback is not None:
                self.problem(
                    route_line,
                    f"route {index} of `on_approve` of state `{name}` can never be taken: route "
                    f"{fallback} has no `when` and is tried first",
                    "put the routes with a `when` first and the one without last",
                )
            if "when" in route:
                self.guard(
                    route["when"],
                    route.line_of("when"),
                    f"`when` of route {index} of `on_approve` of state `{name}`",
                )
            elif fallback is None:
                fallback = index
        if fallback is None:
            self.problem(
                routes.line_of(len(routes) - 1),
                f"every route of `on_approve` of state `{name}` has a `when`; if none holds "
                "the approved document would be stuck",
                "end the list with a route that has no `when`",
            )

    def transitions(self) -> list[tuple[YamlMap, str]]:
        expanded: list[tuple[YamlMap, str]] = []
        star_sources = [
            name
            for name, node in self.states.items()
            if not node.get("final", False) and node.get("review") is None
        ]
        unconditional: dict[tuple[str, str], int] = {}
        for index, item in enumerate(self.tree["transitions"]):
            line = self.tree["transitions"].line_of(index)
            action = item["action"]
            what = f"transition `{action}`"
            self.name("action", action, item.line_of("action"), MACHINE_NAMES)
            self.roles(item["roles"], item.line_of("roles"), what)
            dest = item["to"]
            dest_known = self.known_state(dest, item.line_of("to"), f"in {what}")
            source = item["from"]
            from_line = item.line_of("from")
            if source == ANY_STATE:
                sources = star_sources
                if dest_known and self.states[dest].get("review") is not None:
                    self.problem(
                        from_line,
                        f"'*' would let `{action}` re-enter review state `{dest}` from anywhere",
                        "list the source states",
                    )
            elif isinstance(source, str):
                sources = [source]
            else:
                sources = list(source)
                if ANY_STATE in sources:
                    self.problem(from_line, f"'*' in {what} must stand alone, not in a list")
                    sources = [s for s in sources if s != ANY_STATE]
                if len(set(sources)) != len(sources):
                    self.problem(from_line, f"a state is listed twice in `from` of {what}")
                    sources = list(dict.fromkeys(sources))
            for src in sources:
                if not self.known_state(src, from_line, f"in {what}"):
                    continue
                node = self.states[src]
                if node.get("review") is not None:
                    self.problem(
                        from_line,
                        f"{what} leaves review state `{src}`: a review state's only actions are "
                        "approve and reject",
                        "use on_approve/on_reject",
                    )
                    continue
                if node.get("final", False):
                    self.problem(
                        from_line,
                        f"{what} leaves final state `{src}`: a final state has no way out",
                        "remove `final: true`, or remove the transition",
                    )
                    continue
                key = (action, src)
                if key in unconditional:
                    self.problem(
                        line,
                        f"{what} from `{src}` can never be taken: the one at line "
                        f"{unconditional[key]} has no `when` and is tried first",
                        "put the transitions with a `when` first, the one without last",
                    )
                elif "when" not in item:
                    unconditional[key] = line
                if dest_known:
                    expanded.append((item, src))
            if "when" in item:
                self.guard(item["when"], item.line_of("when"), f"`when` of {what}")
            for number, check in enumerate(item.get("checks") or (), start=1):
                self.guard(check["rule"], check.line_of("rule"), f"check {number} of {what}")
        return expanded

    def overdue(self, fields: tuple[FieldSpec, ...]) -> None:
        overdue = self.tree.get("overdue")
        if overdue is None:
            return
        name = overdue["field"]
        line = overdue.line_of("field")
        spec = next((f for f in fields if f.name == name), None)
        if spec is None:
            suggestion = did_you_mean(name, self.field_names)
            message = f"unknown field `{name}` in `overdue`"
            self.problem(line, f"{message}; {suggestion}" if suggestion else message)
        elif spec.type != "date":
            self.problem(
                line,
                f"`overdue` needs a date field; `{name}` is of type `{spec.type}`",
                "name the date after which the document is overdue",
            )
        states = overdue["states"]
        for index, state in enumerate(states):
            self.known_state(state, states.line_of(index), "in `overdue`")

    def deadlines(self) -> None:
        """`sla` and `escalate`: one deadline per state, escalations after it, known roles."""
        overdue = self.tree.get("overdue")
        dated = set(overdue["states"]) if overdue is not None else set()
        for name, node in self.states.items():
            what = f"state `{name}`"
            sla = parse_duration(node["sla"]) if "sla" in node else None
            if sla is not None and node.get("final", False):
                self.problem(
                    node.line_of("sla"),
                    f"final state `{name}` cannot have an `sla`: nothing is waited for there",
                    "remove `sla`",
                )
            if sla is not None and name in dated:
                self.problem(
                    node.line_of("sla"),
                    f"state `{name}` has an `sla` and is also listed under `overdue`: a state "
                    "has one deadline",
                    "keep either the `sla` or the date field of `overdue` for this state",
                )
            if sla is not None and sla.days == 0:
                self.problem(node.line_of("sla"), f"`sla` of {what} must be at least 1 day")
            if "escalate" not in node:
                continue
            if sla is None:
                self.problem(
                    node.line_of("escalate"),
                    f"`escalate` of {what} needs an `sla`: escalation is for missed deadlines",
                    "add e.g. `sla: 2d` to the state",
                )
            self.escalations(node["escalate"], what, sla)
        if overdue is not None and "escalate" in overdue:
            self.escalations(overdue["escalate"], "`overdue`", None)

    def escalations(self, steps: YamlList, what: str, sla: Any) -> None:
        previous = None
        for index, step in enumerate(steps):
            line = steps.line_of(index)
            after = parse_duration(step["after"])
            self.roles(step["notify"], step.line_of("notify"), f"escalation {index + 1} of {what}")
            if after is None:
                continue
            if sla is not None and (after.working != sla.working or after.days < sla.days):
                self.problem(
                    step.line_of("after"),
                    f"escalation {index + 1} of {what} comes after {after}, before the "
                    f"deadline `sla: {sla}` is missed",
                    f"escalate after {sla} or later (counted from entering the state), in the "
                    "same unit as the `sla`",
                )
            if previous is not None and (
                after.working != previous.working or after.days <= previous.days
            ):
                self.problem(
                    line,
                    f"escalation {index + 1} of {what} must come later than the one before it "
                    f"({previous}), in the same unit",
                )
            previous = after

    def checklist(self, state: str, items: YamlList) -> None:
        seen: set[str] = set()
        for index, item in enumerate(items):
            ident = item["id"]
            self.name("checklist item", ident, items.line_of(index), frozenset())
            if ident in seen:
                self.problem(
                    items.line_of(index),
                    f"checklist item `{ident}` is listed twice in state `{state}`",
                )
            seen.add(ident)

    def visible_to(self) -> None:
        roles = self.tree.get("visible_to")
        if roles is None:
            return
        for index, role in enumerate(roles):
            if role not in ROLES:
                suggestion = did_you_mean(role, ROLES)
                message = f"unknown role `{role}` in `visible_to`"
                self.problem(
                    roles.line_of(index),
                    f"{message}; {suggestion}" if suggestion else message,
                    "roles are: " + ", ".join(ROLES),
                )
        if len(set(roles)) != len(roles):
            self.problem(self.tree.line_of("visible_to"), "a role is listed twice in `visible_to`")

    def example(self, fields: tuple[FieldSpec, ...]) -> dict[str, Any]:
        example = self.tree["example"]
        try:
            return clean_data(fields, with_defaults(fields, example))
        except InvalidData as exc:
            for key, messages in sorted(exc.errors.items()):
                if _path_parts(key)[0] in self.bad_fields:
                    continue
                for message in messages:
                    self.problem(
                        _line_in(example, key, self.tree.line_of("example")),
                        f"example: {key}: {message}",
                    )
        return {}

    def run(self) -> Validated:
        for check in CHECKS:
            check(self)
        if self.problems:
            raise DefinitionError(self.problems)
        return Validated(self.specs, self.guards, tuple(self.expanded), self.example_data)


# --- the checks, in the order they run; each adds problems and may record what later ones use --
def _check_flow_name(v: _Validator) -> None:
    v.flow_name()


def _check_fields(v: _Validator) -> None:
    v.specs = v.fields(v.tree["fields"])
    v.field_names = frozenset(f.name for f in v.specs)


def _check_state_names(v: _Validator) -> None:
    v.state_names()


def _check_initial(v: _Validator) -> None:
    v.initial()


def _check_states(v: _Validator) -> None:
    for name, node in v.states.items():
        v.state(name, node)


def _check_transitions(v: _Validator) -> None:
    v.expanded = v.transitions()
    v.edges = graph.edges_of_tree(v.states, v.expanded)


def _check_no_dead_end(v: _Validator) -> None:
    """A state that is neither final nor a review state needs a way out."""
    if v.unknown_states:
        return
    finals = [name for name, node in v.states.items() if node.get("final", False)]
    for name in graph.dead_ends(v.edges, finals):
        if v.states[name].get("review") is not None:
            continue  # its missing on_approve / on_reject is reported on its own
        v.dead_ends.add(name)
        v.problem(
            v.states.line_of(name),
            f"state `{name}` has no way out: no transition leaves it and it is not final",
            "add a transition from it, or mark it `final: true`",
        )


def _check_reachable(v: _Validator) -> None:
    """Every state can be reached from the initial one (skipped while a state name is unknown:
    it would only repeat the misspelling)."""
    if v.unknown_states:
        return
    initial = v.tree["initial"]
    seen = graph.reachable(v.edges, initial)
    for name in v.states:
        if name not in seen:
            v.problem(
                v.states.line_of(name),
                f"state `{name}` cannot be reached from the initial state `{initial}`",
                "add a transition into it, or remove it",
            )


def _check_reaches_final(v: _Validator) -> None:
    """From every reachable state some final state can still be reached: otherwise documents
    that get there go round in circles for ever (a trap loop)."""
    if v.unknown_states:
        return
    finals = [name for name, node in v.states.items() if node.get("final", False)]
    stuck = graph.trapped(v.edges, v.tree["initial"], finals, ignore=v.dead_ends)
    if not stuck:
        return
    names = ", ".join(f"`{name}`" for name in stuck)
    if not finals:
        message = f"the flow has no final state: documents in {names} can never finish"
        hint = "mark the state where a document is done with `final: true`"
    else:
        word = "state" if len(stuck) == 1 else "states"
        message = (
            f"{word} {names} can never reach a final state: documents there go round in "
            "circles for ever"
        )
        hint = "add a transition from one of them towards a final state"
    v.problem(v.states.line_of(stuck[0]), message, hint)


def _check_overdue(v: _Validator) -> None:
    v.overdue(v.specs)


def _check_deadlines(v: _Validator) -> None:
    if not v.unknown_states:
        v.deadlines()


def _check_example(v: _Validator) -> None:
    v.example_data = v.example(v.specs)


def _check_visible_to(v: _Validator) -> None:
    """Roles named under `visible_to` exist (they may read every document of the flow)."""
    v.visible_to()


CHECKS: tuple[Callable[[_Validator], None], ...] = (
    _check_flow_name,
    _check_fields,
    _check_state_names,
    _check_initial,
    _check_states,
    _check_transitions,
    _check_no_dead_end,
    _check_reachable,
    _check_reaches_final,
    _check_overdue,
    _check_deadlines,
    _check_visible_to,
    _check_example,
)


def validate(tree: YamlMap, path: str = "<text>") -> Validated:
    """Check the meaning of a shape-checked definition; raise DefinitionError with every problem."""
    return _Validator(tree, path).run()


def _choice_labels(labels: Any, choices: Any) -> tuple[tuple[str, Label], ...]:
    """Each labelled choice with its texts: a plain text is the English one (the value itself
    is the Chinese); a mapping may give both."""
    if not isinstance(labels, dict):
        return ()
    found = []
    for choice in dict.fromkeys(choices):
        value = labels.get(choice)
        if isinstance(value, str):
            found.append((choice, Label(choice, value)))
        elif isinstance(value, dict):
            found.append((choice, Label(value.get("zh") or choice, value.get("en") or choice)))
    return tuple(found)
