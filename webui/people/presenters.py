"""What the people pages print: rows computed here, templates only loop and print."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from webui.i18n import lang, t
from workflow.models import User
from workflow.roles import ROLES


@dataclass(frozen=True)
class PersonRow:
    username: str
    name: str
    roles: list[str]  # role names in the reader's language
    active: bool
    status: str
    tokens: int
    must_change_password: bool
    created_at: object


def role_name(role: str) -> str:
    return ROLES[role].get(lang()) if role in ROLES else role


def person_rows(users: Iterable[User], tokens: dict[int, int]) -> list[PersonRow]:
    return [
        PersonRow(
            username=u.username,
            name=u.name,
            roles=[role_name(r) for r in sorted(u.roles)],
            active=u.active,
            status=t("在用", "Active") if u.active else t("已停用", "Disabled"),
            tokens=tokens.get(u.id, 0),
            must_change_password=u.must_change_password,
            created_at=u.created_at,
        )
        for u in users
    ]


def role_choices(selected: Iterable[str] | None) -> list[tuple[str, str, bool]]:
    """(role, its name, ticked) for the role checkboxes."""
    chosen = set(selected or ())
    return [(role, role_name(role), role in chosen) for role in ROLES]
