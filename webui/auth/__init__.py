"""Sign-in and sign-out."""

from flask import Blueprint

bp = Blueprint("auth", __name__, url_prefix="/auth")

from webui.auth import views  # noqa: E402,F401
