"""A FlowSpec compiled to a `transitions` state machine, once per flow version, and cached.

The machine is built with `model=None` and never rebuilt; `resolve` answers "from here, with
this data, where does this action go?" from the same transition table, in the same order, with
the same compiled guards the machine's conditions use. Persistence, locking and the review
rules live elsewhere.

Built with `auto_transitions=False` (no `to_<state>()` shortcut around the review), no `'*'`
sources (the definition's `'*'` is expanded to explicit states when it is loaded), every
destination a declared state, and `ignore_invalid_triggers=False`.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from transitions import Machine

from workflow.definitions.spec import FlowSpec, TransitionSpec
from workflow.guards import Guard

APPROVE = "approve"
REJECT = "reject"
CACHE_SIZE = 256

_cache: OrderedDict[str, CompiledFlow] = OrderedDict()
_cache_lock = threading.Lock()


def _condition(guard: Guard) -> Callable[[Any], bool]:
    def holds(event: Any) -> bool:
        return guard.evaluate(event.kwargs["data"], event.kwargs.get("today"))

    holds.__name__ = f"guard({guard.source})"
    return holds


@dataclass(frozen=True)
class Resolution:
    """Where an action takes a document: the destination, and the definition transition taken
    (None for approve/reject, whose routes belong to the review state)."""

    dest: str
    transition: TransitionSpec | None = None


class CompiledFlow:
    """One flow version's machine plus the lookups the engine needs, built once per version.

    `resolve` is the one place that decides where an action leads. It walks the machine's own
    transition table in the order the machine would try it, evaluating the compiled guards
    directly (no throwaway model per call: that costs more than the rest of an approval).
    """

    def __init__(self, spec: FlowSpec, key: str) -> None:
        self.spec = spec
        self.key = key
        names = [s.name for s in spec.states]
        self.machine = Machine(
            model=None,
            states=names,
            initial=spec.initial,
            auto_transitions=False,
            send_event=True,
            ignore_invalid_triggers=False,
        )
        self._routes: dict[tuple[str, str], list[tuple[Guard | None, Resolution]]] = {}
        for t in spec.transitions:
            self._add(t.action, t.source, t.dest, t.when, t)
        for state in spec.states:
            if state.review is None:
                continue
            for route in state.on_approve:
                self._add(APPROVE, state.name, route.to, route.when, None)
            if state.on_reject is not None:
                self._add(REJECT, state.name, state.on_reject, None, None)
        self._actions: dict[str, tuple[str, ...]] = {}
        for state in spec.states:
            if state.review is not None:
                self._actions[state.name] = (APPROVE, REJECT)
            else:
                self._actions[state.name] = tuple(
                    dict.fromkeys(t.action for t in spec.transitions_from(state.name))
                )

    def _add(
        self,
        action: str,
        source: str,
        dest: str,
        when: Guard | None,
        transition: TransitionSpec | None,
    ) -> None:
        if dest not in self.machine.states or source not in self.machine.states:
            raise ValueError(f"{self.spec.name}: `{action}` from `{source}` to unknown `{dest}`")
        self.machine.add_transition(
            action, source, dest, conditions=[_condition(when)] if when is not None else None
        )
        self._routes.setdefault((action, source), []).append((when, Resolution(dest, transition)))

    def resolve(
        self, action: str, state: str, data: Mapping[str, Any], today: dt.date | None = None
    ) -> Resolution | None:
        """Where `action` takes a document in `state` with typed `data`: the first route whose
        guard holds, as the machine orders them; None when there is no such route."""
        for when, resolution in self._routes.get((action, state), ()):
            if when is None or when.evaluate(data, today):
                return resolution
        return None

    def actions_from(self, state: str) -> tuple[str, ...]:
        """The actions that exist from `state`, in definition order (approve/reject in review)."""
        return self._actions.get(state, ())


def compile_flow(spec: FlowSpec, key: str) -> CompiledFlow:
    """The compiled machine for a flow version; `key` is the version's content hash."""
    with _cache_lock:
        compiled = _cache.get(key)
        if compiled is not None:
            _cache.move_to_end(key)
            return compiled
        compiled = CompiledFlow(spec, key)
        _cache[key] = compiled
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
        return compiled


def compiled_from(key: str, load: Callable[[], FlowSpec]) -> CompiledFlow:
    """The cached compiled flow for `key`, calling `load` for its spec only on a miss.

    The one cache of compiled flows: callers holding stored text (process.compiled) come here
    so the text is parsed once per version, not once per caller.
    """
    with _cache_lock:
        compiled = _cache.get(key)
        if compiled is not None:
            _cache.move_to_end(key)
            return compiled
    return compile_flow(load(), key)


def clear_cache() -> None:
    """Forget every compiled flow (for tests)."""
    with _cache_lock:
        _cache.clear()
