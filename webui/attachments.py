"""Attachments on the web: the store from the configuration, the request size for uploads, and
the response that serves a stored file safely (shared by the API and the document page)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from flask import Response, current_app, send_file

from workflow.attachments import INLINE_IMAGES, AttachmentStore
from workflow.models import Attachment

View = TypeVar("View", bound=Callable[..., Any])

# The file is shown on its own, never as part of our pages: no script, no plugin, no form, no
# fetch; images are sandboxed. (Chromium's PDF viewer does not load under `sandbox`.)
FILE_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'self'"


def accepts_upload(view: View) -> View:
    """Mark a view that receives a file: its request may be as large as ATTACHMENT_MAX_SIZE
    (webui/__init__.py raises the limit before anything reads the body)."""
    view.accepts_upload = True  # type: ignore[attr-defined]
    return view


def store() -> AttachmentStore:
    """The attachment store configured for this application."""
    config = current_app.config
    root = config.get("ATTACHMENT_DIR") or Path(current_app.instance_path) / "attachments"
    return AttachmentStore(Path(root), int(config["ATTACHMENT_MAX_SIZE"]))


def file_response(attachment: Attachment, path: Path, download: bool = False) -> Response:
    """The stored file with its checked type, its original name (RFC 6266/5987 encoded), no
    sniffing and a strict CSP; inline unless `download` is asked for."""
    response = send_file(
        path,
        mimetype=attachment.content_type,
        as_attachment=download,
        download_name=attachment.name,
        conditional=True,
        etag=attachment.sha256,
        max_age=0,
    )
    policy = FILE_CSP + ("; sandbox" if attachment.content_type in INLINE_IMAGES else "")
    response.headers["Content-Security-Policy"] = policy
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    return response
