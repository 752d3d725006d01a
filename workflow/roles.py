"""The roles of a sales department; definitions may only name these."""

from __future__ import annotations

from workflow.definitions.spec import Label

ROLES: dict[str, Label] = {
    "sales": Label("业务员", "Sales rep"),
    "sales_admin": Label("销售内勤", "Sales administrator"),
    "sales_manager": Label("销售经理", "Sales manager"),
    "warehouse": Label("库管", "Warehouse keeper"),
    "finance": Label("财务", "Finance"),
    "gm": Label("总经理", "General manager"),
    "auditor": Label("审计", "Auditor"),
    "flow_admin": Label("流程管理员", "Flow administrator"),
    "user_admin": Label("用户管理员", "User administrator"),
}

# Interface languages a user may choose (catalogues in webui/translations).
LANGUAGES = ("zh_Hans", "zh_Hant", "en")

# Auditors read everything and act on nothing; flow admins manage definitions, not documents.
NON_ACTING_ROLES = frozenset({"auditor"})
