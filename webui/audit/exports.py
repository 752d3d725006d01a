"""Exports of a filtered history: CSV (UTF-8 with BOM, formula-safe) and XLSX (XlsxWriter in
constant-memory mode), streamed, with headers in the reader's language and the columns an
auditor reads: names, state labels, customer and amount, flow version, data and event hashes."""

from __future__ import annotations

import codecs
import csv
import io
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from zoneinfo import ZoneInfo

import xlsxwriter
from flask import Response, current_app, stream_with_context

from webui.i18n import N_, lang, tr
from workflow.audit_reports import AuditRow
from workflow.db import as_utc

# Cells a spreadsheet would run as a formula (or that start a DDE payload) get a leading quote.
CSV_DANGEROUS = ("=", "+", "-", "@", "\t", "\r")
COLUMNS: list[tuple[str, tuple[str, str]]] = [  # key, (中文, English)
    ("seq", N_("序号", "Seq")),
    ("at", N_("时间", "Time")),
    ("flow", N_("流程", "Flow")),
    ("flow_version", N_("流程版本", "Flow version")),
    ("document", N_("单据号", "Document")),
    ("customer", N_("客户/标题", "Customer / title")),
    ("amount", N_("金额", "Amount")),
    ("actor", N_("操作人", "By")),
    ("login", N_("账号", "Login")),
    ("action", N_("动作", "Action")),
    ("outcome", N_("结果", "Outcome")),
    ("code", N_("拒绝原因代码", "Refusal code")),
    ("from_state", N_("原状态", "From state")),
    ("to_state", N_("新状态", "To state")),
    ("revision", N_("修订版本", "Revision")),
    ("comment", N_("意见", "Comment")),
    ("data_hash", N_("数据哈希", "Data hash")),
    ("attachment", N_("附件 (SHA-256)", "Attachment (SHA-256)")),
    ("hash", N_("事件哈希", "Event hash")),
]
OUTCOME_TEXT = {"ok": N_("允许", "allowed"), "refused": N_("拒绝", "refused")}


def headers() -> list[str]:
    return [tr(pair) for _, pair in COLUMNS]


def _text(label: Any) -> str:
    if label is None:
        return ""
    return label.get(lang()) if hasattr(label, "get") else str(label)


def cells(row: AuditRow) -> list[Any]:
    """One event as export cells, in COLUMNS order (text, except the integers)."""
    zone = ZoneInfo(current_app.config.get("DISPLAY_TIMEZONE", "Asia/Shanghai"))
    e = row.event
    outcome = tr(OUTCOME_TEXT[e.outcome]) if e.outcome in OUTCOME_TEXT else e.outcome
    return [
        e.id,
        as_utc(e.at).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"),
        _text(row.flow_title) or (e.flow or ""),
        e.flow_version,
        e.document_id,
        row.customer,
        "" if row.amount is None else format(row.amount, "f"),
        row.actor_name,
        e.actor or "",
        _text(row.action_label),
        outcome,
        e.code or "",
        _text(row.from_label),
        _text(row.to_label),
        e.revision,
        e.comment or "",
        e.data_hash or "",
        attachment_cell(e.details),
        e.hash,
    ]


def attachment_cell(details: Any) -> str:
    """An `attach` event's file: its name and the SHA-256 the event sealed."""
    found = (details or {}).get("attachment") if isinstance(details, dict) else None
    if not isinstance(found, dict):
        return ""
    return f"{found.get('name', '')} sha256:{found.get('sha256', '')}"


def csv_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(CSV_DANGEROUS) else text


def csv_stream(rows: Iterable[AuditRow]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    yield codecs.BOM_UTF8.decode()
    writer.writerow(headers())
    for count, row in enumerate(rows, 1):
        writer.writerow([csv_cell(c) for c in cells(row)])
        if count % 200 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def xlsx_stream(rows: Iterable[AuditRow], anchor: dict[str, Any] | None = None) -> Iterator[bytes]:
    """Write the workbook row by row to a temporary file (constant memory), then stream it."""
    handle, path = tempfile.mkstemp(suffix=".xlsx")
    os.close(handle)
    try:
        book = xlsxwriter.Workbook(path, {"constant_memory": True, "strings_to_formulas": False})
        sheet = book.add_worksheet("audit")
        bold = book.add_format({"bold": True})
        for col, title in enumerate(headers()):
            sheet.write_string(0, col, title, bold)
        for number, row in enumerate(rows, 1):
            for col, value in enumerate(cells(row)):
                if isinstance(value, int):
                    sheet.write_number(number, col, value)
                elif value is not None:
                    sheet.write_string(number, col, str(value))  # never a formula
        if anchor:
            info = book.add_worksheet("anchor")
            for number, key in enumerate(("at", "seq", "events", "key_id", "root")):
                info.write_string(number, 0, key)
                info.write_string(number, 1, str(anchor.get(key, "")))
        book.close()
        with open(path, "rb") as f:
            while chunk := f.read(64 * 1024):
                yield chunk
    finally:
        os.unlink(path)


def export_response(
    fmt: str, rows: Callable[[], Iterable[AuditRow]], anchor: dict[str, Any] | None
) -> Response:
    """A streamed download; the chain's anchor (root, last sequence) rides in the headers."""
    if fmt == "xlsx":
        body: Iterator[Any] = xlsx_stream(rows(), anchor)
        mimetype = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        name = "audit.xlsx"
    else:
        body = csv_stream(rows())
        mimetype = "text/csv"
        name = "audit.csv"
    response = Response(stream_with_context(body), mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    if fmt == "csv":
        response.content_type = "text/csv; charset=utf-8"
    if anchor:
        response.headers["X-Audit-Anchor-Root"] = str(anchor.get("root"))
        response.headers["X-Audit-Anchor-Seq"] = str(anchor.get("seq"))
    return response
