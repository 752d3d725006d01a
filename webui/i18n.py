"""Language and time zone selection: the user's choice, then the browser's, then Chinese."""

from __future__ import annotations

from flask import current_app, request, session
from flask_login import current_user

LANGUAGES = ("zh", "en")


def select_locale() -> str:
    if current_user and current_user.is_authenticated and current_user.language in LANGUAGES:
        return current_user.language
    if session.get("lang") in LANGUAGES:
        return session["lang"]
    return request.accept_languages.best_match(LANGUAGES) or "zh"


def select_timezone() -> str:
    return current_app.config["DISPLAY_TIMEZONE"]


def lang() -> str:
    """The short language code of this request ("zh" or "en"), for definition labels."""
    return "en" if select_locale().startswith("en") else "zh"
