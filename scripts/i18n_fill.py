"""Fill the empty translations of the catalogues after `pybabel update` (run by `make i18n`).

- zh_Hans: the Chinese of each `t("中文", "English")` pair (its msgctxt);
- en: the English (its msgid);
- zh_Hant: the zh_Hans text converted to Traditional characters with OpenCC (`s2twp`, Taiwan
  standard with its usual words) — a first draft a person reads and corrects in
  webui/translations/zh_Hant/LC_MESSAGES/messages.po; a corrected entry is never overwritten.

`--hant` refreshes only zh_Hant. Needs the `i18n` extra (`pip install -e '.[i18n]'`) for the
converter; the application itself never converts at run time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import pathlib
import sys

from babel.messages.pofile import read_po, write_po

ROOT = pathlib.Path(__file__).resolve().parent.parent
DIR = ROOT / "webui" / "translations"


def po_path(locale: str) -> pathlib.Path:
    return DIR / locale / "LC_MESSAGES" / "messages.po"


# Fixed header dates: two branches that both run `make i18n` then differ only in texts (no
# conflict over "POT-Creation-Date"), and an unchanged catalogue compiles to the same bytes.
FIXED_DATE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _load(locale: str):
    with po_path(locale).open("rb") as fh:
        catalog = read_po(fh, locale=locale)
    catalog.creation_date = catalog.revision_date = FIXED_DATE
    return catalog


def _pin_template() -> None:
    pot = DIR / "messages.pot"
    with pot.open("rb") as fh:
        catalog = read_po(fh)
    catalog.creation_date = catalog.revision_date = FIXED_DATE
    with pot.open("wb") as fh:
        write_po(fh, catalog, no_location=True, sort_output=True)


def _save(locale: str, catalog) -> None:
    with po_path(locale).open("wb") as fh:
        write_po(fh, catalog, width=100, omit_header=False, no_location=True, sort_output=True)


# OpenCC's s2twp choices that are wrong for this product's texts (found reading the drafts).
FIXUPS = {
    "併發布": "並發布",
    "釋出": "發布",
    "程式碼": "代碼",
    "賬號": "帳號",
    "下劃線": "底線",
    "以上覆核": "以上複核",
    "透過": "通過",
}


def to_traditional(convert, text: str) -> str:
    out = convert(text)
    for wrong, right in FIXUPS.items():
        out = out.replace(wrong, right)
    return out


def fill(catalog, source) -> int:
    """Give every empty (or fuzzy) message the text `source(message)`; returns how many."""
    count = 0
    for message in catalog:
        if not message.id:
            continue  # the header
        if not message.string or message.fuzzy:
            message.string = source(message)
            message.flags.discard("fuzzy")
            count += 1
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hant", action="store_true", help="fill zh_Hant only")
    args = parser.parse_args(argv)
    _pin_template()
    hans = _load("zh_Hans")
    if not args.hant:
        print("zh_Hans:", fill(hans, lambda m: m.context or m.id), "filled")
        _save("zh_Hans", hans)
        english = _load("en")
        print("en:", fill(english, lambda m: m.id), "filled")
        _save("en", english)
    try:
        from opencc import OpenCC
    except ImportError:
        print("zh_Hant: install the i18n extra (pip install -e '.[i18n]')", file=sys.stderr)
        return 1
    convert = OpenCC("s2twp").convert
    simplified = {(m.context, m.id): m.string for m in hans if m.id}
    hant = _load("zh_Hant")
    filled = fill(
        hant,
        lambda m: to_traditional(convert, simplified.get((m.context, m.id)) or m.context or m.id),
    )
    print("zh_Hant:", filled, "filled (read them: webui/translations/zh_Hant)")
    _save("zh_Hant", hant)
    return 0


if __name__ == "__main__":
    sys.exit(main())
