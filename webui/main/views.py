from __future__ import annotations

from flask import jsonify, render_template
from flask_login import current_user
from sqlalchemy import text

from webui.extensions import db
from webui.main import bp
from workflow.services import list_flows


@bp.get("/healthz")
def healthz():
    db.session.execute(text("SELECT 1"))
    db.session.rollback()
    return jsonify(status="ok")


@bp.get("/")
def index():
    flows = list_flows(db.session)
    return render_template("main/index.html", flows=flows, user=current_user)
