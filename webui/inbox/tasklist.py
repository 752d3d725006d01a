"""The task list page's query: filters read from the URL (bookmarkable), problems named in the
user's language, and links that keep every filter while changing one."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from flask import current_app
from werkzeug.datastructures import MultiDict

from webui.i18n import lang
from webui.inbox.forms import search_args
from webui.inbox.helpers import t
from workflow import tasklist
from workflow.process import compiled

KEYS = ("part", "flow", "state", "submitter", "since", "until", "q", "number", "min", "max", "sort")
DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
NAME_RE = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
PAGE_SIZE = 50


@dataclass
class ListQuery:
    filters: tasklist.Filters
    cursor: str | None
    problems: list[str] = field(default_factory=list)
    args: dict[str, str] = field(default_factory=dict)  # the filters as given (for links)

    @property
    def searching(self) -> bool:
        return any(k in self.args for k in KEYS if k not in ("part", "sort"))

    def url(self, **changes: str | None) -> str:
        """This list's query string with some filters changed (None drops one); a new filter
        starts again from the first page."""
        merged = {**self.args, **changes}
        return "?" + urlencode({k: v for k, v in merged.items() if v})


def _day(raw: str, end: bool) -> dt.datetime | None:
    if not DATE_RE.fullmatch(raw):
        return None
    try:
        day = dt.date.fromisoformat(raw) + dt.timedelta(days=1 if end else 0)
    except ValueError:
        return None
    zone = ZoneInfo(current_app.config.get("DISPLAY_TIMEZONE", "Asia/Shanghai"))
    return dt.datetime.combine(day, dt.time(), tzinfo=zone).astimezone(dt.UTC)


def parse(args: MultiDict, default_part: str = "waiting") -> ListQuery:
    """Read the list's filters from the URL; a bad one is named, not a 500 and not ignored."""
    given = {
        k: args.get(k, "").strip()[: tasklist.MAX_TEXT] for k in KEYS if args.get(k, "").strip()
    }
    problems: list[str] = []
    if "number" in given:  # `#123` as people write it
        given["number"] = given["number"].lstrip("#") or "#"
    part = given.get("part", default_part)
    if part not in tasklist.PARTS:
        problems.append(t("范围", "part"))
        part = default_part
    sort = given.get("sort", "waiting")
    if sort not in tasklist.SORTS:
        problems.append(t("排序", "sort"))
        sort = "waiting"
    amounts, bad_amounts = search_args(
        MultiDict({k: given[k] for k in ("min", "max") if k in given})
    )
    problems += [
        t("金额从", "amount from") if k == "min" else t("金额到", "amount to") for k in bad_amounts
    ]
    moments = {}
    for key, end, name in (
        ("since", False, t("日期从", "date from")),
        ("until", True, t("日期到", "date to")),
    ):
        if key in given:
            moments[key] = _day(given[key], end)
            if moments[key] is None:
                problems.append(name)
    submitter = given.get("submitter")
    if submitter and not NAME_RE.fullmatch(submitter):
        problems.append(t("提交人", "submitted by"))
        submitter = None
    filters = tasklist.Filters(
        part=part,
        flow=given.get("flow", "")[:40] or None,
        state=given.get("state", "")[:40] or None,
        created_by=submitter,
        since=moments.get("since"),
        until=moments.get("until"),
        q=given.get("q"),
        number=given.get("number"),
        amount_min=amounts.get("amount_min"),
        amount_max=amounts.get("amount_max"),
        sort=sort,
    )
    cursor = args.get("cursor", "").strip()[:500] or None
    return ListQuery(filters, cursor, problems, given)


def part_label(part: str) -> str:
    return {
        "waiting": t("待我处理", "Waiting for me"),
        "acted": t("我已处理", "I acted on"),
        "created": t("我发起的单据", "Documents I started"),
        "all": t("全部可见", "All I may see"),
    }[part]


@dataclass(frozen=True)
class StateGroup:
    """The states of one flow, for the state filter: (name, label, selected) under its title."""

    title: str
    states: tuple[tuple[str, str, bool], ...]


def state_groups(flows: list[Any], query: ListQuery) -> list[StateGroup]:
    """The state filter's choices by their names people read (双人复核, not double_check),
    grouped by flow; the chosen flow's only, once a flow is chosen. One option is selected:
    the given state under the chosen flow, else under the first flow that has it."""
    chosen, wanted = query.filters.flow, query.filters.state
    groups, marked = [], False
    for version in flows:
        if chosen and version.flow_name != chosen:
            continue
        spec = compiled(version).spec
        states = []
        for state in spec.states:
            pick = not marked and state.name == wanted
            marked = marked or pick
            states.append((state.name, state.label.get(lang()), pick))
        groups.append(StateGroup(spec.title.get(lang()), tuple(states)))
    return groups
