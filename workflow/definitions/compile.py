"""A FlowSpec compiled to a `transitions` state machine, once per flow version, and cached.

The machine is built with `model=None` and never rebuilt: to find where an action leads, a
throwaway model is added in the wanted state, the trigger is fired (conditions evaluate the
compiled guards against the typed document data) and the model is removed again. Persistence,
locking and the review rules live elsewhere; this only answers "from here, with this data, where
does this action go?" — the same way the machine itself would.

Built with `auto_transitions=False` (no `to_<state>()` shortcut around the review), no `'*'`
sources (the definition's `'*'` is expanded to explicit states when it is loaded), every
destination a declared state, and `ignore_invalid_triggers=False`.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from transitions import Machine, MachineError

from workflow.definitions.spec import FlowSpec, TransitionSpec
from workflow.guards import Guard

APPROVE = "approve"
REJECT = "reject"
CACHE_SIZE = 256

_cache: OrderedDict[str, CompiledFlow] = OrderedDict()
_cache_lock = threading.Lock()


class _Probe:
    """The throwaway model a resolution runs on; `transitions` binds `state` and triggers."""

    state: str


def _condition(guard: Guard) -> Callable[[Any], bool]:
    def holds(event: Any) -> bool:
        return guard.evaluate(event.kwargs["data"], event.kwargs.get("today"))

    holds.__name__ = f"guard({guard.source})"
    return holds


class CompiledFlow:
    """One flow version's machine plus the lookups the engine needs, built once per version."""

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
        for t in spec.transitions:
            self._add(t.action, t.source, t.dest, t.when)
        for state in spec.states:
            if state.review is None:
                continue
            for route in state.on_approve:
                self._add(APPROVE, state.name, route.to, route.when)
            if state.on_reject is not None:
                self._add(REJECT, state.name, state.on_reject, None)
        self._actions: dict[str, tuple[str, ...]] = {}
        for state in spec.states:
            if state.review is not None:
                self._actions[state.name] = (APPROVE, REJECT)
            else:
                self._actions[state.name] = tuple(
                    dict.fromkeys(t.action for t in spec.transitions_from(state.name))
                )

    def _add(self, action: str, source: str, dest: str, when: Guard | None) -> None:
        if dest not in self.machine.states or source not in self.machine.states:
            raise ValueError(f"{self.spec.name}: `{action}` from `{source}` to unknown `{dest}`")
        self.machine.add_transition(
            action, source, dest, conditions=[_condition(when)] if when is not None else None
        )

    def resolve(
        self, action: str, state: str, data: Mapping[str, Any], today: dt.date | None = None
    ) -> str | None:
        """Where the machine takes a document in `state` on `action` with typed `data`.

        None when the action does not exist from that state or no guard holds.
        """
        if action not in self.machine.events or state not in self.machine.states:
            return None
        probe = _Probe()
        self.machine.add_model(probe, initial=state)
        try:
            moved = probe.trigger(action, data=data, today=today)  # type: ignore[attr-defined]
        except MachineError:
            return None
        finally:
            self.machine.remove_model(probe)
        return probe.state if moved else None

    def transition_for(
        self, action: str, state: str, data: Mapping[str, Any], today: dt.date | None = None
    ) -> TransitionSpec | None:
        """The first definition transition for `action` from `state` whose `when` holds."""
        for t in self.spec.transitions:
            if (
                t.action == action
                and t.source == state
                and (t.when is None or t.when.evaluate(data, today))
            ):
                return t
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
