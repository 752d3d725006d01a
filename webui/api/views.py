"""The endpoints: parse with a schema, call one engine function, dump with a schema.

No view decides who may do what: the engine does (get_document → NotFound, actions_for,
Refused…), and webui/errors.py maps its errors to HTTP.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, cached_property
from typing import Any

from flask import Response, current_app, request
from flask_login import current_user
from marshmallow import Schema
from werkzeug.exceptions import BadRequest, UnsupportedMediaType

from webui import attachments
from webui.api import bp, dumping
from webui.api import schemas as s
from webui.attachments import accepts_upload
from webui.extensions import db
from webui.i18n import lang
from workflow import idempotency, notify, policy, queries, services
from workflow.definitions.spec import FlowSpec, Label
from workflow.errors import InvalidData, NotFound, Refused
from workflow.models import FlowVersion, Review
from workflow.process import DocumentProcess, compiled

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain")
DOC = "/documents/<int(min=1, max=2147483647):doc_id>"


# --- the operation registry (the OpenAPI document is generated from it) ------------------------
@dataclass
class Operation:
    rule: str
    method: str
    endpoint: str
    summary: str
    description: str
    response: type[Schema] | None
    status: int
    body: type[Schema] | None = None
    query: type[Schema] | None = None
    errors: tuple[int, ...] = ()
    extra_content: dict[str, Any] = field(default_factory=dict)
    raw_body: dict[str, Any] | None = None
    form_body: dict[str, Any] | None = None  # multipart/form-data (uploads)
    files: tuple[str, ...] = ()  # a file response: its possible media types
    alt_status: tuple[int, ...] = ()
    public: bool = False


OPERATIONS: list[Operation] = []


def operation(
    rule: str,
    method: str,
    summary: str,
    response: type[Schema] | None,
    status: int = 200,
    **meta: Any,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a view and describe it for the OpenAPI document."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        bp.add_url_rule(rule, endpoint=view.__name__, view_func=view, methods=[method])
        OPERATIONS.append(
            Operation(
                rule,
                method,
                view.__name__,
                summary,
                (view.__doc__ or "").strip(),
                response,
                status,
                **meta,
            )
        )
        return view

    return decorate


@cache
def instance(schema: type[Schema]) -> Schema:
    """One instance per schema class, for loading requests (responses are dumped by
    webui/api/dumping.py): building one and its nested schemas costs more than the load it
    serves, and marshmallow 4 schemas hold no per-call state."""
    return schema()


def json_body(schema: type[Schema]) -> dict[str, Any]:
    """The request's JSON body loaded by `schema` (415 not JSON, 400 malformed, 422 invalid)."""
    if not request.is_json:
        raise UnsupportedMediaType("send the body as JSON (Content-Type: application/json)")
    try:
        payload = request.get_json()
    except RecursionError:
        raise BadRequest("the JSON is nested too deeply") from None
    return instance(schema).load(payload)


def query_args(schema: type[Schema]) -> dict[str, Any]:
    return instance(schema).load(request.args.to_dict())


def dump(schema: type[Schema], obj: Any, status: int = 200) -> tuple[Any, int]:
    """The response body `schema` makes of `obj` (compiled: webui/api/dumping.py), and status."""
    return dumping.dumper(schema)(obj), status


def me():
    return current_user.row


# --- views of engine objects, dumped by the schemas ---------------------------------------------
@dataclass
class ReviewStatus:
    required: int
    roles: tuple[str, ...]
    approvals: list[Review]
    checklist: tuple[Any, ...] = ()
    blind: bool = False


class DocumentView:
    """One document as the caller sees it (the contract's document shape)."""

    def __init__(
        self, process: DocumentProcess, user: Any, include: frozenset[str] = frozenset()
    ) -> None:
        document = process.document
        self.id = document.id
        self.number = document.number
        self.flow = document.flow_name
        self.flow_version = document.flow_version.version
        self.state = document.state
        # Labels in the caller's language, asked for once per document rather than once per
        # label by the schema (a list page has hundreds; each asks Flask-Babel for the locale).
        language = lang()
        self.state_label = process.state.label.get(language)
        self.revision = document.revision
        self.data = document.data
        self.created_by = document.created_by.username
        self.created_by_name = document.created_by.name
        self.created_at = document.created_at
        rule = process.state.review
        self.review = (
            ReviewStatus(
                rule.required,
                rule.roles,
                process.visible_approvals(user),
                tuple({"id": i.id, "label": i.label.get(language)} for i in rule.checklist),
                rule.blind,
            )
            if rule
            else None
        )
        self.actions = process.actions_for(user)
        self.claim = process.active_claim()
        self.can_edit = process.can_edit(user)
        self.overdue = queries.is_overdue(process)
        # Asked for with `?include=attachments,comments` (one read each); lists and the
        # responses of writes leave them out, so an approval stays within its round trips.
        if "attachments" in include:
            self.can_attach = bool(policy.can_attach(user, document, process.spec))
            self.attachments = queries.attachments(db.session, process)
        if "comments" in include:
            self.comments = queries.comments(db.session, process, user)


class FlowView:
    """A published flow version with its parsed definition."""

    def __init__(self, version: FlowVersion) -> None:
        self.version_row = version
        self.name = version.flow_name
        self.version = version.version
        self.title = self.titles = Label(version.title_zh, version.title_en)
        self.published_at = version.created_at
        self.yaml = version.yaml_text

    @cached_property
    def spec(self) -> FlowSpec:
        return compiled(self.version_row).spec

    def __getattr__(self, name: str) -> Any:  # initial, states, fields, transitions
        if name in ("initial", "states", "fields", "transitions"):
            return getattr(self.spec, name)
        raise AttributeError(name)


def document_response(process: DocumentProcess, status: int = 200) -> tuple[Any, int]:
    return dump(s.DocumentSchema, DocumentView(process, me()), status)


def perform(
    status: int,
    call: Callable[[Callable[..., None]], Any],
    body: Callable[..., Any] | None = None,
    fingerprint: bytes | None = None,
) -> Response:
    """Run one engine call and answer with the document it acted on.

    The body is built from the transaction's own objects before it commits (no second
    transaction re-reads what was just written). With an `Idempotency-Key` header the body is
    stored under the key in that same transaction, and a retry is answered from it.
    """
    claim = idempotency_claim(fingerprint)
    if claim is not None and (found := idempotency.stored(db.session, claim)) is not None:
        return replay(found)
    built: dict[str, str] = {}

    def document_body(process: DocumentProcess) -> Any:
        return dumping.dumper(s.DocumentSchema)(DocumentView(process, me()))

    def before_commit(*results: Any) -> None:
        built["body"] = current_app.json.dumps((body or document_body)(*results))
        if claim is not None:
            idempotency.remember(db.session, claim, status, built["body"])

    try:
        call(before_commit)
    except (Refused, NotFound):
        # A copy of this request that raced ahead may have won: answer as it was answered.
        if claim is not None and (found := idempotency.stored(db.session, claim)) is not None:
            db.session.rollback()
            return replay(found)
        raise
    return Response(built["body"], status, mimetype="application/json")


def idempotency_claim(fingerprint: bytes | None = None) -> idempotency.Claim | None:
    """The request's Idempotency-Key; the body is what it asked, unless `fingerprint` says it
    (an upload: its fields and the file's hash, not the multipart framing, which a retry may
    frame with another boundary)."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    body = request.get_data() if fingerprint is None else fingerprint
    return idempotency.claim(me().id, key, request.method, request.path, body)


def replay(found: idempotency.Stored) -> Response:
    response = Response(found.body, found.status, mimetype="application/json")
    response.headers["Idempotent-Replayed"] = "true"
    return response


# --- flows ---------------------------------------------------------------------------------------
@operation("/flows", "GET", "Published flows", s.FlowPageSchema)
def list_flows():
    """The current version of every published flow: name, title, version."""
    flows = [FlowView(v) for v in services.list_flows(db.session)]
    return dump(s.FlowPageSchema, queries.Page(flows, None))


@operation("/flows/<flowname:name>", "GET", "A flow's current version", s.FlowSchema, errors=(404,))
def get_flow(name: str):
    """The current version: name, version, title, the YAML text, states and fields."""
    version = services.current_version(db.session, name)
    if version is None:
        raise NotFound(f"no published flow named `{name}`")
    return dump(s.FlowSchema, FlowView(version))


@operation(
    "/flows/<flowname:name>",
    "PUT",
    "Publish a new version",
    s.PublishOutcomeSchema,
    201,
    errors=(403, 415, 422),
    alt_status=(200, 202),
    raw_body={
        "type": "string",
        "maxLength": 65536,
        "description": "The definition's YAML text; its `name` must be the URL's.",
    },
)
def put_flow(name: str):
    """`flow_admin` only. 201 with the new version; 200 with the current version when the text
    is unchanged; 202 `{version: null, change, status: pending, weakens}` when the text weakens
    review (a second `flow_admin` approves it at `/flows/{name}/changes/{change}/approve`); 422
    with `details` a list of `{line, message, hint}` when it does not validate. Optional
    `?note=` is stored with the version as its change note."""
    if request.mimetype not in YAML_TYPES:
        raise UnsupportedMediaType("send the definition as YAML (Content-Type: application/yaml)")
    from webui.api.flows import publish_response  # the editor's rules (webui/api/flows.py)

    return publish_response(name, request.get_data(as_text=True), request.args.get("note"))


# --- documents -----------------------------------------------------------------------------------
@operation(
    "/documents",
    "POST",
    "Start a document",
    s.DocumentSchema,
    201,
    body=s.DocumentCreateSchema,
    errors=(403, 404, 415, 422),
)
def create_document():
    """Starts a document on the flow's current version; 422 lists field errors in `details`."""
    args = json_body(s.DocumentCreateSchema)
    return perform(
        201,
        lambda done: services.create_document(
            db.session, me(), args["flow"], args["data"], before_commit=done
        ),
    )


@operation(
    DOC, "GET", "A document", s.DocumentSchema, query=s.DocumentQuerySchema, errors=(404, 422)
)
def get_document(doc_id: int):
    """The document with its review status and the actions the caller may take now;
    `?include=attachments,comments` adds its attached files and its comments."""
    args = query_args(s.DocumentQuerySchema)
    process = services.get_document(db.session, doc_id, me())
    return dump(s.DocumentSchema, DocumentView(process, me(), args["include"]))


@operation(
    DOC,
    "PATCH",
    "Edit a document's data",
    s.DocumentSchema,
    body=s.DocumentEditSchema,
    errors=(403, 404, 409, 415, 422),
)
def edit_document(doc_id: int):
    """Changes the given fields in an editable state; starts a new revision (voiding approvals)."""
    args = json_body(s.DocumentEditSchema)
    return perform(
        200,
        lambda done: services.edit_document(
            db.session, doc_id, me(), args["data"], args["revision"], before_commit=done
        ),
    )


@operation(
    DOC + "/actions",
    "POST",
    "Act on a document",
    s.DocumentSchema,
    body=s.ActionSchema,
    errors=(403, 404, 409, 415, 422),
)
def act(doc_id: int):
    """approve, reject (with a comment) or a flow action, on the revision the caller saw.
    403 self_review, already_reviewed, role_not_allowed, action_not_allowed; 409 stale_revision,
    conflict; 422 a bad body or a failed check (check_failed)."""
    args = json_body(s.ActionSchema)
    return perform(
        200,
        lambda done: services.act(
            db.session,
            doc_id,
            me(),
            args["action"],
            args["revision"],
            args["comment"],
            checks=args.get("checks"),
            failed_checks=args.get("failed_checks"),
            before_commit=done,
        ),
    )


@operation(
    DOC + "/comments",
    "POST",
    "Comment on a document",
    s.CommentOutSchema,
    201,
    body=s.CommentSchema,
    errors=(403, 404, 415, 422),
)
def comment(doc_id: int):
    """A question or remark without approving or rejecting; shown on the document and in its
    history (in a blind review, hidden from the other reviewers until they have decided)."""
    args = json_body(s.CommentSchema)
    _, event = services.comment(db.session, doc_id, me(), args["text"])
    return dump(s.CommentOutSchema, event, 201)


UPLOAD_FORM = {
    "type": "object",
    "required": ["file", "revision"],
    "properties": {
        "file": {
            "type": "string",
            "format": "binary",
            "description": "A PDF, JPEG or PNG (judged from its content), at most "
            "ATTACHMENT_MAX_SIZE (10 MiB by default).",
        },
        "revision": {
            "type": "integer",
            "minimum": 1,
            "maximum": s.MAX_ID,
            "description": "The revision you are attaching to.",
        },
    },
}
FILE_TYPES = ("application/pdf", "image/jpeg", "image/png")


@operation(
    DOC + "/attachments",
    "POST",
    "Attach a file",
    s.AttachmentSchema,
    201,
    errors=(403, 404, 409, 413, 415, 422),
    form_body=UPLOAD_FORM,
)
@accepts_upload
def attach(doc_id: int):
    """multipart/form-data with `file` and `revision`. Who may edit the document in its state
    may attach (in a review state: its creator). Starts a new revision, so approvals given
    before no longer count (in a review state a new round opens). 413 `too_large` over the
    limit, 415 `unsupported_file_type` when the content is not PDF, JPEG or PNG (its name and
    declared type are ignored); a refused upload stores nothing."""
    if request.mimetype != "multipart/form-data":
        raise UnsupportedMediaType("send the file as multipart/form-data (a `file` field)")
    upload = request.files.get("file")
    # Only the known fields are read (a multipart form may carry others; they are ignored).
    args = s.UploadSchema().load({k: request.form[k] for k in ("revision",) if k in request.form})
    if upload is None:
        raise InvalidData({"file": ["choose a file to attach (the `file` field)"]})
    return perform(
        201,
        lambda done: services.attach(
            db.session,
            attachments.store(),
            doc_id,
            me(),
            upload.stream,
            upload.filename,
            args["revision"],
            before_commit=done,
        ),
        body=lambda _process, attachment: dumping.dumper(s.AttachmentSchema)(attachment),
        fingerprint=upload_fingerprint(upload, args["revision"]),
    )


def upload_fingerprint(upload: Any, revision: int) -> bytes:
    """What an upload asks: the revision, the file name and the file's content hash."""
    digest = hashlib.file_digest(upload.stream, "sha256").hexdigest()
    upload.stream.seek(0)
    return f"{revision}\n{upload.filename}\n{digest}".encode()


@operation(
    DOC + "/attachments/<int(min=1, max=2147483647):attachment_id>",
    "GET",
    "An attached file",
    None,
    errors=(403, 404),
    files=FILE_TYPES,
)
def get_attachment(doc_id: int, attachment_id: int):
    """The file itself, with its checked type, its name in Content-Disposition and a strict
    Content-Security-Policy; `?download=1` asks for it as a download. Opened by the document's
    creator, its reviewers and those who act on it, and auditors (403 for others who see the
    document; 404 when the document is not visible)."""
    found, path = services.open_attachment(
        db.session, attachments.store(), doc_id, attachment_id, me()
    )
    return attachments.file_response(found, path, download=request.args.get("download") == "1")


@operation(DOC + "/history", "GET", "A document's history", s.EventPageSchema, errors=(404,))
def history(doc_id: int):
    """The audit events of this document, oldest first (`next` is always null)."""
    events = queries.history(db.session, doc_id, me())
    return dump(s.EventPageSchema, queries.Page(events, None))


@operation(
    "/tasks",
    "GET",
    "The caller's inbox",
    s.DocumentPageSchema,
    query=s.PageQuerySchema,
    errors=(422,),
)
def tasks():
    """Documents where the caller has an action now, longest-waiting first."""
    args = query_args(s.PageQuerySchema)
    page = queries.inbox(db.session, me(), args.get("limit"), args.get("cursor"))
    user = me()
    items = [DocumentView(p, user) for p in page.items]
    return dump(s.DocumentPageSchema, queries.Page(items, page.next))


@operation(DOC + "/claim", "POST", "Claim a task", s.DocumentSchema, errors=(403, 404, 409))
def claim(doc_id: int):
    """ "I am on it" for 30 minutes: colleagues see it; nobody is kept from acting. 409 `claimed`
    while someone else's claim runs; 403 when there is nothing for you to do."""
    return document_response(services.claim(db.session, doc_id, me()))


@operation(DOC + "/claim", "DELETE", "Release a claim", s.DocumentSchema, errors=(403, 404))
def release_claim(doc_id: int):
    """Give your claim up."""
    return document_response(services.release_claim(db.session, doc_id, me()))


@operation("/notifications", "GET", "The caller's notifications", s.NotificationPageSchema)
def notifications():
    """Newest first (at most 50): tasks waiting for the caller, rejections of their documents."""
    items = notify.recent(db.session, me())
    return dump(s.NotificationPageSchema, queries.Page(items, None))
