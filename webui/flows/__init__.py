"""The managers' screens (流程管理员): every flow with its versions, the editor (check as you
type, diagram, diff, publish with a note), pending changes, and each flow's diagram."""

from flask import Blueprint

bp = Blueprint("flows", __name__)

from webui.flows import views  # noqa: E402,F401
