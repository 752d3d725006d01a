"""The attachment store on its own: types from the first bytes, names made safe, the size limit,
nothing left behind on a refusal, and one file per content."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from workflow.attachments import TYPES, AttachmentStore, clean_name, sniff
from workflow.errors import AttachmentTooLarge, AttachmentTypeRefused, InvalidData

PDF, PNG, JPEG = (t for t in TYPES)


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"%PDF-1.7\n", "application/pdf"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "image/png"),
        (b"\xff\xd8\xff\xdb\x00", "image/jpeg"),
        (b"\xff\xd8\xff\xe1Exif", "image/jpeg"),
        (b" %PDF-1.7", None),  # not at the start
        (b"<html><body>%PDF-", None),
        (b"MZ\x90\x00", None),
        (b"GIF89a", None),
        (b"<svg xmlns=", None),
        (b"PK\x03\x04", None),  # a zip (or an .xlsx)
        (b"", None),
    ],
)
def test_the_type_is_read_from_the_first_bytes(head, expected):
    found = sniff(head)
    assert (found.content_type if found else None) == expected


@pytest.mark.parametrize(
    ("name", "kind", "expected"),
    [
        ("发票扫描件.pdf", PDF, "发票扫描件.pdf"),
        ("receipt.JPG", JPEG, "receipt.JPG"),
        ("../../etc/passwd", PDF, "passwd.pdf"),
        ("C:\\Users\\li\\签收单.png", PNG, "签收单.png"),
        ('a"b;\r\nX-Evil: 1.pdf', PDF, "a_b;_X-Evil_ 1.pdf"),
        ("receipt.exe", PNG, "receipt.exe.png"),  # the real type's extension, always
        ("", PDF, "attachment.pdf"),
        (None, JPEG, "attachment.jpg"),
        ("...", PDF, "attachment.pdf"),
    ],
)
def test_names_lose_paths_and_control_characters_and_end_in_their_type(name, kind, expected):
    assert clean_name(name, kind) == expected


def test_a_long_name_is_cut_keeping_its_extension():
    name = clean_name("长" * 500 + ".pdf", PDF)
    assert len(name) == 200 and name.endswith(".pdf")


def files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"%PDF-" + b"x" * 100, AttachmentTooLarge),
        (b"<html>" + b"x" * 10, AttachmentTypeRefused),
        (b"", InvalidData),
    ],
)
def test_a_refused_file_leaves_nothing_behind(tmp_path, content, error):
    store = AttachmentStore(tmp_path / "files", max_size=64)
    with pytest.raises(error):
        store.stage(io.BytesIO(content), "x.pdf")
    assert files(tmp_path) == []


def test_staged_files_move_into_place_once_per_content(tmp_path):
    store = AttachmentStore(tmp_path, max_size=1024)
    content = b"%PDF-1.4 receipt"
    digest = hashlib.sha256(content).hexdigest()
    first = store.stage(io.BytesIO(content), "a.pdf")
    assert first.sha256 == digest and first.size == len(content)
    assert store.open(digest) is None  # not in place before it is kept
    first.keep()
    second = store.stage(io.BytesIO(content), "b.pdf")
    second.keep()
    assert files(tmp_path) == [tmp_path / digest[:2] / digest]
    assert store.open(digest).read_bytes() == content
    discarded = store.stage(io.BytesIO(b"%PDF-other"), "c.pdf")
    discarded.discard()
    assert files(tmp_path) == [tmp_path / digest[:2] / digest]


def test_only_hex_digests_name_files(tmp_path):
    with pytest.raises(ValueError):
        AttachmentStore(tmp_path).path_of("../" + "a" * 61)
