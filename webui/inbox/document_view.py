"""Small read-only facts for the document page: whether a rejection still stands, and people's
names (李强, not li)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from workflow.models import User


def standing_rejection(document: Any, events: list[Any]) -> Any | None:
    """The rejection that sent the document where it is now; None once it moved on (was
    resubmitted, approved, paid) — the banner must not outlive the rejection."""
    moves = [e for e in events if e.from_state != e.to_state and e.to_state is not None]
    if moves and moves[-1].action == "reject" and moves[-1].to_state == document.state:
        return moves[-1]
    return None


def display_names(session: Session, usernames: Iterable[str | None]) -> dict[str, str]:
    """username → display name (the username when none is set), in one query."""
    wanted = {u for u in usernames if u}
    if not wanted:
        return {}
    rows = session.execute(
        select(User.username, User.display_name).where(User.username.in_(wanted))
    )
    return {username: display or username for username, display in rows}
