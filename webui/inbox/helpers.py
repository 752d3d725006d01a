"""Template helpers: two-language texts, money, times, and harmless user text."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from babel.numbers import format_decimal
from flask_babel import format_datetime, get_locale
from markupsafe import Markup

from webui.i18n import N_, lang, t
from webui.inbox import bp
from webui.messages import field_text
from workflow.db import as_utc

# Bidi embedding/override/isolate controls: they could make "¥100" read as "001¥" on screen.
BIDI_RE = re.compile("[\u202a-\u202e\u2066-\u2069]")


def strip_bidi(value: Any) -> Any:
    """Jinja `finalize`: every printed value loses bidi controls (Markup stays Markup)."""
    if isinstance(value, Markup):
        # Already-safe markup (e.g. csrf_token()); removing characters cannot add markup.
        return Markup(BIDI_RE.sub("", str(value)))  # noqa: S704
    if isinstance(value, str):
        return BIDI_RE.sub("", value)
    return value


@bp.record_once
def _install(state) -> None:
    state.app.jinja_env.finalize = strip_bidi


# `t(zh, en)` (webui/i18n.py) is the templates' global, installed by create_app.
__all__ = ["t"]


@bp.app_template_filter("label")
def label(value: Any) -> str:
    """A definition Label in the request's language (a plain `{zh, en}` mapping too: there
    a missing `zh_Hant` falls back to `zh`)."""
    if value is None:
        return ""
    if isinstance(value, dict):
        return value.get(lang()) or value.get("zh") or value.get("en") or ""
    return value.get(lang())


@bp.app_template_global()
def new_title(zh: str, en: str) -> str:
    """新建费用报销 / "New expense claim" (not "New Expense claim"): in English the title
    continues the sentence, so its capital goes unless it starts an acronym (VAT)."""
    if lang() != "en":
        return f"新建{zh}"
    if len(en) > 1 and en[0].isupper() and not en[1].isupper():
        en = en[0].lower() + en[1:]
    return f"New {en}"


@bp.app_template_filter("money")
def money(value: Any, places: int = 2) -> str:
    if value is None or value == "":
        return ""
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    # Babel groups the digits for the reader's locale; the amount is never rounded (the engine
    # refuses more places than the field allows) and the sign stays "¥" in every language.
    pattern = "#,##0." + "0" * places if places > 0 else "#,##0"
    text = format_decimal(
        number, format=pattern, locale=get_locale() or "zh_Hans", decimal_quantization=False
    )
    return f"¥{text}"


@bp.app_template_filter("when")
def when(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    return format_datetime(as_utc(value), "yyyy-MM-dd HH:mm")


@bp.app_template_filter("waited")
def waited(value: dt.datetime | None) -> str:
    """How long since `value`, e.g. "2 天 3 小时" / "2 d 3 h"."""
    if value is None:
        return ""
    seconds = max(0, int((dt.datetime.now(dt.UTC) - as_utc(value)).total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return t("{d} 天 {h} 小时", "{d} d {h} h", d=days, h=hours)
    if hours:
        return t("{h} 小时 {m} 分", "{h} h {m} min", h=hours, m=minutes)
    return t("{m} 分钟", "{m} min", m=minutes)


ACTION_NAMES = {
    "create": N_("创建", "Created"),
    "edit": N_("修改", "Edited"),
    "approve": N_("同意", "Approved"),
    "reject": N_("驳回", "Rejected"),
    "comment": N_("评论", "Commented"),
    "attach": N_("添加附件", "Attached a file"),
}


@bp.app_template_filter("field_message")
def field_message(message: Any) -> str:
    """An engine field message in the request's language, translated by its code."""
    return field_text(message)


@bp.app_template_global()
def action_name(process: Any, action: str) -> str:
    """What to call an action: approve/reject, or the definition's transition label."""
    if action in ACTION_NAMES:
        return t(*ACTION_NAMES[action])
    transition = process.transition(action)  # the one this document's data selects
    return transition.label.get(lang()) if transition is not None else action


@bp.app_template_global()
def event_name(spec: Any, action: str, source: str | None = None, dest: str | None = None) -> str:
    """What to call a history event: the label of the transition it took."""
    if action in ACTION_NAMES:
        return t(*ACTION_NAMES[action])
    candidates = [tr for tr in spec.transitions if tr.action == action]
    exact = [tr for tr in candidates if tr.source == source and tr.dest == dest]
    chosen = (exact or candidates or [None])[0]
    return chosen.label.get(lang()) if chosen is not None else action


@bp.app_template_global()
def state_label(spec: Any, name: str | None) -> str:
    if not name or not spec.has_state(name):
        return name or ""
    return spec.state(name).label.get(lang())


@bp.app_template_filter("shown")
def shown(value: Any, field: Any) -> str:
    """A stored value as text for a field (money formatted, booleans as 是/否)."""
    if value is None or value == "":
        return "—"
    if field is not None and field.type == "decimal":
        return money(value, field.places)
    if field is not None and field.type == "choice":
        return field.choice_text(value, lang())
    if (field is not None and field.type == "boolean") or isinstance(value, bool):
        return t("是", "Yes") if value else t("否", "No")
    if isinstance(value, list):
        return t("{n} 行", "{n} rows", n=len(value))
    return str(value)
