"""People: user administrators list, add and change accounts (roles, disable, password
reset, API tokens). Every rule is the policy's (workflow/policy.py); every change is a
service of workflow/accounts.py in one transaction with its audit events."""

from flask import Blueprint

bp = Blueprint("people", __name__, url_prefix="/people", template_folder="templates")

from webui.people import views  # noqa: E402,F401
