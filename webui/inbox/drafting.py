"""What a drafter sees: only the fields the first step is for."""

from __future__ import annotations

from workflow.definitions.spec import FieldSpec, FlowSpec


def creation_fields(spec: FlowSpec) -> tuple[FieldSpec, ...]:
    """The flow's fields minus those a later step fills (listed in `editable_fields` of a later
    state: payment reference, tracking no., bid result). A required field is always shown, so
    nobody is refused for a field they cannot see."""
    initial = spec.state(spec.initial)
    later = {
        name
        for state in spec.states
        if state.name != spec.initial
        for name in state.editable_fields
    } - set(initial.editable_fields)
    return tuple(f for f in spec.fields if f.name not in later or f.required)
