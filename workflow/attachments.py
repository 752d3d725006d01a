"""Attachment files: their type judged from the content, stored once per SHA-256.

The bytes live in a directory outside the database (`ATTACHMENT_DIR`, by default
`instance/attachments`), one file per content hash (`ab/abcdef…`): the same receipt attached
twice is stored once. An upload is first copied to a temporary file in that directory while it
is hashed, measured and its first bytes checked (`stage`); only a document action that is
allowed moves it into place, by an atomic rename, just before its transaction commits
(`Staged.keep`). Whatever is refused or fails leaves no file behind (`Staged.discard`).

No Flask here: the web layer passes the directory and the limit.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from workflow.errors import AttachmentTooLarge, AttachmentTypeRefused, InvalidData
from workflow.models import Attachment

DEFAULT_MAX_SIZE = 10 * 1024 * 1024
MAX_NAME_LENGTH = 200
CHUNK = 64 * 1024


@dataclass(frozen=True)
class FileType:
    content_type: str
    extensions: tuple[str, ...]
    magic: bytes


# The accepted types, recognised by their first bytes only.
TYPES: tuple[FileType, ...] = (
    FileType("application/pdf", (".pdf",), b"%PDF-"),
    FileType("image/png", (".png",), b"\x89PNG\r\n\x1a\n"),
    FileType("image/jpeg", (".jpg", ".jpeg"), b"\xff\xd8\xff"),
)
ACCEPTED = ", ".join(t.content_type for t in TYPES)
INLINE_IMAGES = frozenset({"image/png", "image/jpeg"})


def sniff(head: bytes) -> FileType | None:
    """The accepted type these first bytes begin, or None."""
    return next((t for t in TYPES if head.startswith(t.magic)), None)


_UNSAFE = re.compile(r"[\x00-\x1f\x7f\"\\/:*?<>|]+")


def clean_name(name: str | None, kind: FileType) -> str:
    """The client's file name as stored and offered back: no path, no control or quoting
    characters, at most MAX_NAME_LENGTH characters, ending in an extension of its real type
    (`receipt.exe` holding a PNG becomes `receipt.exe.png`)."""
    text = unicodedata.normalize("NFC", name or "")
    text = re.split(r"[\\/]", text)[-1]
    text = _UNSAFE.sub("_", text).strip(" .")
    if not text.lower().endswith(kind.extensions):
        text = (text or "attachment") + kind.extensions[0]
    if len(text) > MAX_NAME_LENGTH:
        stem, dot, ext = text.rpartition(".")
        text = stem[: MAX_NAME_LENGTH - len(ext) - 1] + dot + ext
    return text


@dataclass
class Staged:
    """An upload checked and hashed, waiting in a temporary file for its transaction."""

    store: AttachmentStore
    temp: Path | None
    sha256: str
    size: int
    kind: FileType
    name: str
    kept: bool = field(default=False)

    @property
    def content_type(self) -> str:
        return self.kind.content_type

    def keep(self) -> None:
        """Move the file into place (atomic rename); a file with the same hash is reused."""
        if self.temp is None:
            return
        final = self.store.path_of(self.sha256)
        if final.exists():
            self.discard()
        else:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.temp, final)
            self.temp = None
        self.kept = True

    def discard(self) -> None:
        """Remove the temporary file (nothing of a refused upload stays on disk)."""
        if self.temp is not None:
            self.temp.unlink(missing_ok=True)
            self.temp = None


@dataclass(frozen=True)
class AttachmentStore:
    """The directory the files live in, and the largest file accepted."""

    root: Path
    max_size: int = DEFAULT_MAX_SIZE

    def path_of(self, sha256: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise ValueError("not a SHA-256 hex digest")
        return self.root / sha256[:2] / sha256

    def open(self, sha256: str) -> Path | None:
        """The stored file's path, or None if it is missing from the directory."""
        path = self.path_of(sha256)
        return path if path.is_file() else None

    def stage(self, stream: BinaryIO, name: str | None) -> Staged:
        """Copy `stream` to a temporary file, hashing and measuring it; refuse (leaving nothing
        behind) a file over the limit, an empty one, or one whose content is not accepted."""
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        handle, raw_path = tempfile.mkstemp(dir=tmp_dir, prefix="upload-")
        temp = Path(raw_path)
        digest, size, head = hashlib.sha256(), 0, b""
        try:
            with os.fdopen(handle, "wb") as out:
                while chunk := stream.read(CHUNK):
                    size += len(chunk)
                    if size > self.max_size:
                        raise AttachmentTooLarge(
                            f"the file is larger than {self.max_size // (1024 * 1024)} MB "
                            f"({self.max_size} bytes); scan it at a lower resolution or split it",
                            {"max_size": self.max_size},
                        )
                    if len(head) < 16:
                        head += chunk[: 16 - len(head)]
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if size == 0:
                raise InvalidData({"file": ["the file is empty"]}, "the file is empty")
            kind = sniff(head)
            if kind is None:
                raise AttachmentTypeRefused(
                    "only PDF, JPEG and PNG files can be attached (仅支持 PDF、JPEG、PNG); "
                    "this file's content is none of them, whatever its name says",
                    {"accepted": [t.content_type for t in TYPES]},
                )
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return Staged(self, temp, digest.hexdigest(), size, kind, clean_name(name, kind))


def check_files(session: Session, store: AttachmentStore) -> tuple[int, list[str]]:
    """Every stored file the attachment rows name, hashed again: (files checked, problems).

    `audit verify` proves the rows are what the audit chain sealed; this proves the bytes on
    disk are still the ones those hashes name (none missing, none swapped)."""
    problems, checked = [], 0
    stmt = select(Attachment.sha256, Attachment.id, Attachment.document_id).order_by(Attachment.id)
    seen: set[str] = set()
    for digest, attachment_id, document_id in session.execute(stmt):
        if digest in seen:
            continue
        seen.add(digest)
        checked += 1
        where = f"attachment {attachment_id} of document {document_id}"
        path = store.open(digest)
        if path is None:
            problems.append(f"{where}: its file {digest} is missing from {store.root}")
            continue
        with path.open("rb") as stored:
            if hashlib.file_digest(stored, "sha256").hexdigest() != digest:
                problems.append(f"{where}: the file {digest} no longer has that content")
    return checked, problems
