"""Idempotency keys (the IETF draft's semantics, as Stripe's API has them).

A client that may retry a POST or PATCH sends `Idempotency-Key: <unique text>`. The response of
the first request is stored with the key in the same transaction as its action, so:

- the same key with the same request within `KEEP` gets the stored response, nothing is done
  again (also when two copies race: the unique (user, key) index lets one win, the other is
  answered from what the winner stored);
- the same key with a different request is refused (`idempotency_key_reused`);
- keys are per user; refused requests store nothing (a retry meets the same refusal).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from workflow.db import as_utc, utcnow
from workflow.errors import IdempotencyKeyReused, InvalidData
from workflow.models import IdempotencyKey

KEEP = dt.timedelta(hours=24)
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class Claim:
    """One request's key: who sent it, the key, and the fingerprint of what it asked."""

    user_id: int
    key: str
    fingerprint: str


@dataclass(frozen=True)
class Stored:
    status: int
    body: str


def claim(user_id: int, key: str, method: str, path: str, body: bytes) -> Claim:
    """A claim for a request; the key must be printable ASCII of at most 255 characters."""
    if not key or len(key) > MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise InvalidData(
            {"Idempotency-Key": [f"must be 1 to {MAX_KEY_LENGTH} printable ASCII characters"]},
            "the Idempotency-Key header is not usable",
        )
    digest = hashlib.sha256(f"{method} {path}\n".encode() + body).hexdigest()
    return Claim(user_id, key, digest)


def stored(session: Session, claim: Claim, now: dt.datetime | None = None) -> Stored | None:
    """The response stored under this key, or None (raises if the key was used differently)."""
    row = session.scalar(
        select(IdempotencyKey).where(
            IdempotencyKey.user_id == claim.user_id, IdempotencyKey.key == claim.key
        )
    )
    if row is None:
        return None
    if as_utc(row.created_at) < (now or utcnow()) - KEEP:
        # Expired: forget it so the key may be used afresh.
        session.delete(row)
        session.commit()
        return None
    if row.fingerprint != claim.fingerprint:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was already used for a different request; use a new key for "
            "a new request"
        )
    return Stored(row.status, row.body)


def remember(session: Session, claim: Claim, status: int, body: str) -> None:
    """Store the response under the key, in the caller's (the action's) transaction."""
    session.add(
        IdempotencyKey(
            user_id=claim.user_id,
            key=claim.key,
            fingerprint=claim.fingerprint,
            status=status,
            body=body,
        )
    )


def purge(session: Session, now: dt.datetime | None = None) -> int:
    """Delete keys older than KEEP (run by `tick`)."""
    result = session.execute(
        delete(IdempotencyKey).where(IdempotencyKey.created_at < (now or utcnow()) - KEEP)
    )
    session.commit()
    return result.rowcount or 0
