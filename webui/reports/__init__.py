"""The managers' reports: the overview (统计表), the contract list (合同履行一览表), the
documents behind each figure, and the charts as SVG."""

from flask import Blueprint

bp = Blueprint("reports", __name__, url_prefix="/reports")

from webui.reports import views  # noqa: E402,F401
