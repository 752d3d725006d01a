"""The catalogues are complete, and the language is chosen as documented.

A string added with t("中文", "English") (or N_) since the last `make i18n` fails here: run
`make i18n` (extracts, updates zh_Hans/zh_Hant/en, drafts zh_Hant, compiles) and commit
webui/translations. Every engine refusal code and field message code must have a translation
too (webui/messages.py)."""

from __future__ import annotations

import ast
import gettext
import io
import pathlib

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

import workflow.errors
from webui import messages
from workflow import bulk, fields  # noqa: F401 - bulk defines a refusal code
from workflow.roles import LANGUAGES

ROOT = pathlib.Path(__file__).resolve().parents[2]
DIR = ROOT / "webui" / "translations"
KEYWORDS = {"t": ((1, "c"), 2), "_t": ((1, "c"), 2), "N_": ((1, "c"), 2)}
METHODS = [
    ("webui/**/templates/**.html", "jinja2"),
    ("webui/**.py", "python"),
    ("workflow/**.py", "python"),
]


@pytest.fixture(scope="module")
def extracted() -> set[tuple[str, str]]:
    found = set()
    for _file, _line, message, _comments, context in extract_from_dir(
        str(ROOT), METHODS, keywords=KEYWORDS, comment_tags=()
    ):
        if context is not None:  # every keyword here has a context; None: a non-literal call
            found.add((context, message))
    assert len(found) > 300
    return found


def catalog(locale: str):
    with (DIR / locale / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        return read_po(fh, locale=locale)


@pytest.mark.parametrize("locale", LANGUAGES)
def test_every_text_is_translated(extracted, locale):
    cat = catalog(locale)
    translated = {(m.context, m.id) for m in cat if m.id and m.string and not m.fuzzy}
    missing = sorted(extracted - translated)
    assert not missing, (
        f"{len(missing)} texts have no {locale} translation (run `make i18n`): {missing[:10]}"
    )


@pytest.mark.parametrize("locale", LANGUAGES)
def test_compiled_catalogues_match_the_po_files(locale):
    """`make run` reads the committed .mo files: they must say what the .po files say."""
    buffer = io.BytesIO()
    write_mo(buffer, catalog(locale))
    buffer.seek(0)
    wanted = gettext.GNUTranslations(buffer)._catalog
    with (DIR / locale / "LC_MESSAGES" / "messages.mo").open("rb") as fh:
        shipped = gettext.GNUTranslations(fh)._catalog
    assert shipped == wanted, f"run `make i18n-compile` for {locale}"


def test_simplified_chinese_is_the_source_and_traditional_differs():
    hans = {(m.context, m.id): m.string for m in catalog("zh_Hans") if m.id}
    assert all(text == context for (context, _id), text in hans.items())
    hant = {(m.context, m.id): m.string for m in catalog("zh_Hant") if m.id}
    converted = sum(1 for key, text in hant.items() if text != hans.get(key))
    assert converted > len(hant) / 2  # most texts have a traditional character


def test_no_t_call_is_built_at_run_time():
    """t(f"…", f"…") cannot be in a catalogue: write t("{n} 行", "{n} rows", n=count)."""
    bad = []
    for path in [*ROOT.joinpath("webui").rglob("*.py"), *ROOT.joinpath("workflow").rglob("*.py")]:
        if path.name == "i18n.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            if node.func.id not in KEYWORDS or any(isinstance(a, ast.Starred) for a in node.args):
                continue
            literal = len(node.args) >= 2 and all(
                isinstance(a, ast.Constant) and isinstance(a.value, str) for a in node.args[:2]
            )
            wrapper = (
                path.name == "views.py"
                and node.func.id == "t"
                and [getattr(a, "id", None) for a in node.args] == ["zh", "en"]
            )
            if not literal and not wrapper:
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not bad, f"t() with text built at run time: {bad}"


def _codes(cls) -> set[str]:
    out = set()
    for sub in cls.__subclasses__():
        out.add(sub.code)
        out |= _codes(sub)
    return out


def test_every_engine_code_and_field_message_has_a_translation():
    codes = _codes(workflow.errors.WorkflowError) | {workflow.errors.WorkflowError.code}
    assert not codes - set(messages.HEADLINES), codes - set(messages.HEADLINES)
    assert set(fields.MESSAGES) == set(messages.FIELD_TEXTS)
    for code, english in fields.MESSAGES.items():
        assert messages.FIELD_TEXTS[code][1] == english, code  # the same words and {values}


# --- choosing the language ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("header", "expected", "lang_attr"),
    [
        ("zh-TW,zh;q=0.9", "登入", "zh-Hant"),
        ("zh-HK", "登入", "zh-Hant"),
        ("zh-Hant-TW", "登入", "zh-Hant"),
        ("zh-CN,zh;q=0.9", "登录", "zh-Hans"),
        ("en-GB,en;q=0.8", "Sign in", "en"),
        ("fr-FR", "登录", "zh-Hans"),  # a language we do not speak: the default
    ],
)
def test_login_page_follows_accept_language(client, header, expected, lang_attr):
    page = client.get("/auth/login", headers={"Accept-Language": header}).get_data(as_text=True)
    assert expected in page and f'lang="{lang_attr}"' in page


def test_saved_setting_beats_the_browser(app, login_as):
    from tests.webui.test_auth import token_of

    c = login_as("zhang")
    token = token_of(c, "/auth/settings")
    response = c.post("/auth/settings", data={"csrf_token": token, "language": "zh_Hant"})
    assert response.status_code == 303
    page = c.get("/inbox", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert 'lang="zh-Hant"' in page and "設定" in page
    # the switch offers the two other languages
    assert 'value="zh_Hans"' in page and 'value="en"' in page and 'value="zh_Hant"' not in page


@pytest.mark.parametrize(
    ("header", "text"),
    [("zh-CN", "单据不存在或你无权查看"), ("zh-TW", "單據不存在或你無權檢視"), ("en", "Not found")],
)
def test_error_pages_are_translated(login_as, header, text):
    page = login_as("zhang").get("/no/such/page", headers={"Accept-Language": header})
    assert page.status_code == 404 and text in page.get_data(as_text=True)


def test_field_messages_are_translated_by_code(app):
    from workflow.fields import FieldMessage

    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        assert messages.field_text(FieldMessage("at_least", limit=1)) == "不得小于 1"
        assert messages.field_text(FieldMessage("too_many_places", places=2)).startswith(
            "小数位超过 2 位"
        )
    with app.test_request_context(headers={"Accept-Language": "zh-TW"}):
        assert messages.field_text(FieldMessage("at_least", limit=1)) == "不得小於 1"
    with app.test_request_context(headers={"Accept-Language": "en"}):
        assert messages.field_text(FieldMessage("at_least", limit=1)) == "must be at least 1"


# --- the CSRF token lives as long as the sign-in ----------------------------------------------
def test_a_page_left_open_overnight_still_submits_while_signed_in(app):
    """Signed in with "remember me": the session cookie lapses after 12 hours, the sign-in
    does not; the form loaded the evening before still submits the next morning."""
    import datetime as dt

    from freezegun import freeze_time

    from tests.conftest import PASSWORD
    from tests.webui.test_auth import token_of

    start = dt.datetime(2026, 11, 30, 18, 0, tzinfo=dt.UTC)
    with freeze_time(start) as clock:
        c = app.test_client()
        token = token_of(c, "/auth/login")
        data = {"username": "zhang", "password": PASSWORD, "csrf_token": token, "remember": "y"}
        assert c.post("/auth/login", data=data).status_code == 302
        evening = token_of(c, "/auth/settings")
        clock.tick(dt.timedelta(hours=15))  # the next morning
        response = c.post("/auth/settings", data={"csrf_token": evening, "language": "en"})
        assert response.status_code == 303, response.get_data(as_text=True)[:300]
        assert c.get("/auth/settings").status_code == 200  # and the restored sign-in holds
        # Signed out: the same token is refused (the sign-in it belonged to is over).
        assert c.post("/auth/logout", data={"csrf_token": evening}).status_code == 302
        late = c.post("/auth/settings", data={"csrf_token": evening, "language": "zh_Hans"})
        assert late.status_code in (302, 400) and "/auth/settings" not in late.headers.get(
            "Location", ""
        )


# --- flow labels in Traditional Chinese ----------------------------------------------------
def test_a_flow_label_may_carry_zh_hant_else_zh_is_shown():
    from workflow.definitions.build import load_flow, load_flow_file

    text = (ROOT / "definitions" / "shipment.yaml").read_text(encoding="utf-8")
    assert "title: {zh: 发货, en: Shipment}" in text
    spec = load_flow(
        text.replace(
            "title: {zh: 发货, en: Shipment}", "title: {zh: 发货, zh_Hant: 發貨, en: Shipment}"
        )
    )
    assert (spec.title.get("zh"), spec.title.get("zh_Hant"), spec.title.get("en")) == (
        "发货",
        "發貨",
        "Shipment",
    )
    plain = load_flow_file(ROOT / "definitions" / "shipment.yaml")
    assert plain.title.get("zh_Hant") == "发货"  # no zh_Hant: the zh label as written


def test_an_unknown_label_language_is_refused():
    from workflow.definitions.build import load_flow
    from workflow.errors import DefinitionError

    text = (ROOT / "definitions" / "shipment.yaml").read_text(encoding="utf-8")
    with pytest.raises(DefinitionError, match="zh_TW"):
        load_flow(
            text.replace(
                "title: {zh: 发货, en: Shipment}", "title: {zh: 发货, zh_TW: 發貨, en: Shipment}"
            )
        )


def test_the_locale_name_follows_a_locale_changed_mid_request(app):
    """locale_name is kept for the request (every t() asks for it), but beside the locale it
    came from: forcing another locale for a while (a mail in the reader's language) names that
    one, and the request's own comes back after."""
    from flask_babel import force_locale

    from webui.i18n import locale_name, t

    with app.test_request_context(headers={"Accept-Language": "en"}):
        assert locale_name() == "en" and locale_name() == "en"
        with force_locale("zh_Hant"):
            assert locale_name() == "zh_Hant"
            assert t("草稿", "Draft") == "草稿"
        assert locale_name() == "en" and t("草稿", "Draft") == "Draft"
