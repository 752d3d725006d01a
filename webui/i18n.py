"""Language and time zone selection, and the catalogue-backed `t(zh, en)`.

Languages: 简体中文 (`zh_Hans`, the default), 繁體中文 (`zh_Hant`) and English (`en`). The
request's language is the user's saved setting, else the one chosen on this browser (before
sign-in), else the browser's `Accept-Language` (`zh-TW`, `zh-HK`, `zh-MO`, `zh-Hant…` → 繁體,
`en…` → English), else 简体.

Texts are written in the code as `t("中文", "English")`. The pair is the catalogue key
(`msgctxt` = the Chinese, `msgid` = the English — `pybabel extract -k t:1c,2`), and the text
shown is the active catalogue's translation (webui/translations/<locale>/LC_MESSAGES). A pair
not yet in the catalogues (a string added since the last `make i18n`) shows its Chinese (or
its English in English) until the catalogues are updated; tests/webui/test_i18n.py fails on
any such string, so none reaches a release.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, g, has_request_context, request, session
from flask_babel import get_locale, get_translations
from flask_login import current_user

# The catalogue locales, in the order the language switch offers them.
LOCALES = ("zh_Hans", "zh_Hant", "en")
DEFAULT_LOCALE = "zh_Hans"
# What a definition label is asked for in each locale (Label.get): short codes.
LABEL_LANG = {"zh_Hans": "zh", "zh_Hant": "zh_Hant", "en": "en"}
# Names each language is offered under (always in its own script).
LOCALE_NAMES = {"zh_Hans": "简体中文", "zh_Hant": "繁體中文", "en": "English"}
# Earlier saved settings ("zh") and other spellings people or browsers use.
ALIASES = {
    "zh": "zh_Hans",
    "zh_hans": "zh_Hans",
    "zh_cn": "zh_Hans",
    "zh_sg": "zh_Hans",
    "zh_hant": "zh_Hant",
    "zh_tw": "zh_Hant",
    "zh_hk": "zh_Hant",
    "zh_mo": "zh_Hant",
    "en": "en",
}


def normalize(value: str | None) -> str | None:
    """A language tag (`zh-TW`, `zh_Hant`, `en-GB`, `zh`…) as one of LOCALES, or None."""
    if not value:
        return None
    tag = value.strip().replace("-", "_").lower()
    if tag in ALIASES:
        return ALIASES[tag]
    parts = tag.split("_")
    if parts[0] == "en":
        return "en"
    if parts[0] == "zh":
        # zh-Hant-TW, zh-Hans-CN, zh-yue-HK …: the script, else the region decides.
        if "hant" in parts or {"tw", "hk", "mo"} & set(parts):
            return "zh_Hant"
        return "zh_Hans"
    return None


def from_accept_language() -> str | None:
    """The first language of the request's Accept-Language this application speaks."""
    for value, _quality in request.accept_languages:  # best first
        locale = normalize(value)
        if locale is not None:
            return locale
    return None


def select_locale() -> str:
    if current_user and current_user.is_authenticated:
        saved = normalize(getattr(current_user, "language", None))
        if saved is not None:
            return saved
    chosen = normalize(session.get("lang"))
    if chosen is not None:
        return chosen
    return from_accept_language() or DEFAULT_LOCALE


def select_timezone() -> str:
    return current_app.config["DISPLAY_TIMEZONE"]


def locale_name() -> str:
    """This request's locale: "zh_Hans", "zh_Hant" or "en" (zh_Hans outside a request)."""
    if not has_request_context():
        return DEFAULT_LOCALE
    locale = get_locale()
    # Asked for by every t() on a page (hundreds of times): the name is kept beside the locale
    # it came from, so a locale changed mid-request (flask_babel.refresh) is named again.
    known = g.get("_fuhe_locale_name")
    if known is not None and known[0] is locale:
        return known[1]
    name = normalize(str(locale)) or DEFAULT_LOCALE if locale is not None else DEFAULT_LOCALE
    g._fuhe_locale_name = (locale, name)
    return name


def lang() -> str:
    """The language code for definition labels: "zh", "zh_Hant" or "en".

    `lang() == "en"` still asks "is this English?"; Label.get falls back to `zh` where a
    definition has no `zh_Hant` label."""
    return LABEL_LANG[locale_name()]


def html_lang() -> str:
    """The `lang` attribute of pages."""
    return {"zh_Hans": "zh-Hans", "zh_Hant": "zh-Hant", "en": "en"}[locale_name()]


def t(zh: str, en: str, **values: Any) -> str:
    """The text in the request's language, looked up in its catalogue by the pair (zh, en).

    `values` fill `{name}` placeholders after translation: write
    `t("{n} 行", "{n} rows", n=count)`, never an f-string (an f-string cannot be in a
    catalogue)."""
    locale = locale_name()
    text = get_translations().pgettext(zh, en) if has_request_context() else en
    if locale != "en" and text == en:
        text = zh  # not (yet) in the catalogue: the Chinese as written
    return text.format(**values) if values else text


def N_(zh: str, en: str) -> tuple[str, str]:
    """Marks a (zh, en) pair for extraction without translating it now (tables of texts)."""
    return (zh, en)


def tr(pair: tuple[str, str], **values: Any) -> str:
    """A pair marked with N_, in the request's language."""
    return t(pair[0], pair[1], **values)
