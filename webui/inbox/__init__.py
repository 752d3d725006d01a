"""The reviewers' screens: inbox, my documents, the document page, create/edit forms, actions."""

from flask import Blueprint

bp = Blueprint("inbox", __name__)

from webui.inbox import away_views, bulk_views, helpers, printing, views  # noqa: E402,F401
