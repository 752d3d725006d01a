"""Start page and health check."""

from flask import Blueprint

bp = Blueprint("main", __name__)

from webui.main import views  # noqa: E402,F401
