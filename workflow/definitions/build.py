"""YAML text → a validated, frozen FlowSpec: loader → schema → validate → spec dataclasses."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from workflow.calendar import parse_duration
from workflow.definitions.loader import MAX_DEFINITION_BYTES, YamlMap, load_yaml
from workflow.definitions.schema import check_shape
from workflow.definitions.spec import (
    Check,
    ChecklistItem,
    Escalation,
    FlowSpec,
    Label,
    OverdueSpec,
    ReviewSpec,
    Route,
    StateSpec,
    TransitionSpec,
)
from workflow.definitions.validate import Validated, validate
from workflow.errors import DefinitionError


def load_flow(text: str, path: str = "<text>") -> FlowSpec:
    """Parse and validate one definition; raise DefinitionError listing every problem found."""
    tree = load_yaml(text, path)
    problems = check_shape(tree, path)
    if problems:
        raise DefinitionError(problems)
    return _build(tree, validate(tree, path))


def load_flow_file(path: str | os.PathLike[str]) -> FlowSpec:
    """Read a definition file (refusing oversized files before reading them whole)."""
    name = str(path)
    try:
        with Path(path).open("rb") as handle:
            raw = handle.read(MAX_DEFINITION_BYTES + 1)
    except OSError as exc:
        raise DefinitionError.single(name, None, f"cannot read the file: {exc.strerror}") from None
    if len(raw) > MAX_DEFINITION_BYTES:
        raise DefinitionError.single(
            name, None, f"the file is larger than {MAX_DEFINITION_BYTES} bytes"
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DefinitionError.single(
            name, line, "the file is not UTF-8 text", "save it as UTF-8"
        ) from None
    return load_flow(text, name)


def _label(value: Any, fallback: str) -> Label:
    return Label.of(value, fallback)


def _escalations(node: Any) -> tuple[Escalation, ...]:
    return tuple(
        Escalation(parse_duration(step["after"]), tuple(step["notify"]))  # type: ignore[arg-type]
        for step in (node.get("escalate") or ())
    )


def _state(name: str, node: YamlMap, checked: Validated, initial: str) -> StateSpec:
    review = node.get("review")
    routes = node.get("on_approve")
    if isinstance(routes, str):
        on_approve: tuple[Route, ...] = (Route(routes),)
    else:
        on_approve = tuple(
            Route(r["to"], checked.guards[r["when"]] if "when" in r else None) for r in routes or ()
        )
    return StateSpec(
        name=name,
        label=_label(node.get("label"), name),
        editable_by=tuple(node.get("editable_by") or ()),
        editable_fields=tuple(node.get("editable_fields") or ()),
        review=ReviewSpec(
            required=review["required"],
            roles=tuple(review["roles"]),
            allow_earlier_reviewers=review.get("allow_earlier_reviewers", False),
            require_each_role=review.get("require_each_role", False),
            checklist=tuple(
                ChecklistItem(item["id"], _label(item.get("label"), item["id"]))
                for item in review.get("checklist") or ()
            ),
            blind=review.get("blind", False),
        )
        if review is not None
        else None,
        on_approve=on_approve,
        on_reject=node.get("on_reject"),
        final=node.get("final", False),
        owner_only=node.get("owner_only", name == initial),
        void=node.get("void", False),
        sla=parse_duration(node["sla"]) if "sla" in node else None,
        escalate=_escalations(node),
    )


def _transition(item: YamlMap, source: str, checked: Validated, index: int) -> TransitionSpec:
    action = item["action"]
    return TransitionSpec(
        action=action,
        source=source,
        dest=item["to"],
        roles=tuple(item["roles"]),
        label=_label(item.get("label"), action),
        when=checked.guards[item["when"]] if "when" in item else None,
        checks=tuple(
            Check(
                rule=checked.guards[check["rule"]],
                message=_label(check.get("message"), f"`{check['rule']}` does not hold"),
            )
            for check in item.get("checks") or ()
        ),
        line=index,
    )


def _build(tree: YamlMap, checked: Validated) -> FlowSpec:
    states = tree["states"]
    transitions_list = tree["transitions"]
    lines = {id(item): transitions_list.line_of(i) for i, item in enumerate(transitions_list)}
    overdue = tree.get("overdue")
    return FlowSpec(
        name=tree["name"],
        title=_label(tree["title"], tree["name"]),
        description=_label(tree["description"], "") if tree.get("description") else None,
        fields=checked.fields,
        initial=tree["initial"],
        states=tuple(_state(name, node, checked, tree["initial"]) for name, node in states.items()),
        transitions=tuple(
            _transition(item, source, checked, lines[id(item)]) for item, source in checked.expanded
        ),
        example=checked.example,
        overdue=OverdueSpec(overdue["field"], tuple(overdue["states"]), _escalations(overdue))
        if overdue
        else None,
        visible_to=tuple(tree.get("visible_to") or ()),
        number_prefix=tree.get("number_prefix"),
        bulk=tree.get("bulk", True),
    )
