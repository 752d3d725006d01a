"""One hierarchy of domain errors; the web layer maps them to HTTP in one place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class WorkflowError(Exception):
    """Base of every error the engine raises on purpose."""

    code = "workflow_error"
    # Set once the refusal's security event is in the audit log (by the unit of work).
    recorded = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Problem:
    """One problem found in a definition: where and what, in words a manager understands."""

    path: str
    line: int | None
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        text = f"{where}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "message": self.text}

    @property
    def text(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class DefinitionError(WorkflowError):
    """A flow definition that does not validate; carries every problem found."""

    code = "invalid_definition"

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.path, p.line or 0))
        super().__init__("; ".join(str(p) for p in self.problems) or "invalid definition")

    def details(self) -> list[dict[str, Any]]:
        """The problems as the API's `details`: `{line, message}` (the hint in brackets)."""
        return [p.as_dict() for p in self.problems]

    @classmethod
    def single(
        cls, path: str, line: int | None, message: str, hint: str | None = None
    ) -> DefinitionError:
        return cls([Problem(path, line, message, hint)])


class CheckedDefinitionError(DefinitionError):
    """A definition checked in the editor: each detail carries the hint on its own, so the
    editor can show it under the message (`{line, message, hint}`)."""

    def details(self) -> list[dict[str, Any]]:
        return [{"line": p.line, "message": p.message, "hint": p.hint} for p in self.problems]


class Refused(WorkflowError):
    """An action that the rules do not allow; it changes nothing but the audit log."""

    code = "refused"
    status = 403

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.details = details


class SelfReview(Refused):
    code = "self_review"


class AlreadyReviewed(Refused):
    code = "already_reviewed"


class RoleNotAllowed(Refused):
    code = "role_not_allowed"


class ActionNotAllowed(Refused):
    code = "action_not_allowed"


class NotOwner(Refused):
    """A colleague's document in a state that belongs to its creator (a draft)."""

    code = "not_owner"


class SelfAdministration(Refused):
    """A user administrator changing their own roles or disabling themselves (four eyes on
    accounts too: another user administrator does it)."""

    code = "self_administration"


class PasswordChangeRequired(Refused):
    """A password reset by a user administrator, not yet changed by its owner."""

    code = "password_change_required"


class ChecklistIncomplete(Refused):
    """An approval that does not confirm every point of the review's checklist."""

    code = "checklist_incomplete"
    status = 422


class DuplicateValue(Refused):
    """A `unique` value another live document already holds (details name it)."""

    code = "duplicate_value"
    status = 409


class OverLimit(Refused):
    """A reference taking more from another document than it has left (details name it)."""

    code = "over_limit"
    status = 409


class CheckFailed(Refused):
    """A definition's `checks` rule does not hold for the document's data."""

    code = "check_failed"
    status = 422


class AttachmentTooLarge(Refused):
    """An attachment over the configured size limit (nothing is stored)."""

    code = "too_large"
    status = 413


class AttachmentTypeRefused(Refused):
    """An attachment whose content is not one of the accepted types (PDF, JPEG, PNG), judged
    from its first bytes, never from its name or the client's content type."""

    code = "unsupported_file_type"
    status = 415


class Conflict(Refused):
    """The document changed under the caller (a concurrent change won)."""

    code = "conflict"
    status = 409


class StaleRevision(Conflict):
    code = "stale_revision"


class BulkNotAllowed(Refused):
    """The flow says `bulk: false`: each document is decided on its own page."""

    code = "bulk_not_allowed"


class NotInSelection(Conflict):
    """A bulk approve covers tasks of one flow and one state; this document is of another
    (or moved on since it was listed)."""

    code = "not_in_selection"


class Claimed(Conflict):
    """Someone else said "I am on it" and their claim has not expired."""

    code = "claimed"


class Unavailable(WorkflowError):
    """The database could not be reached (a connection broke): nothing is known to be wrong
    with the request; try again shortly (503 with Retry-After)."""

    code = "unavailable"


class DatabaseGone(Unavailable):
    """The connection died before anything was committed (a database restart or failover):
    nothing was changed, and the same request may simply be sent again."""

    code = "database_unavailable"

    def __init__(
        self,
        message: str = "the connection to the database broke; nothing was changed — retry in a "
        "moment",
    ) -> None:
        super().__init__(message)


class CommitUnknown(Unavailable):
    """The connection broke while committing: the change may or may not have been stored.

    The caller must not be told "conflict": retrying with the same Idempotency-Key is safe."""

    code = "commit_outcome_unknown"


class IdempotencyKeyReused(WorkflowError):
    """An Idempotency-Key sent again with a different request."""

    code = "idempotency_key_reused"


class NotFound(WorkflowError):
    code = "not_found"


class InvalidData(WorkflowError):
    """Document data that does not fit the flow's fields; `errors` maps field → messages."""

    code = "invalid_data"

    def __init__(self, errors: dict[str, Any], message: str = "the data is not valid") -> None:
        super().__init__(message)
        self.errors = errors


class Unauthorized(WorkflowError):
    """No valid credentials (unknown user, bad password, disabled account)."""

    code = "unauthorized"


class Forbidden(WorkflowError):
    """Valid credentials, but this person may not do this."""

    code = "forbidden"
