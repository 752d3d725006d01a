"""The auditors' workspace (审计): history search, document timelines, the segregation-of-duties
report, refused actions, chain verification and exports. Read-only, and for auditors only."""

from flask import Blueprint

bp = Blueprint("audit", __name__, template_folder="templates")

from webui.audit import views  # noqa: E402,F401
