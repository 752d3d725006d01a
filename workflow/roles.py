"""The roles of a sales department; definitions may only name these."""

from __future__ import annotations

from workflow.definitions.spec import Label

ROLES: dict[str, Label] = {
    "sales": Label("业务员", "Sales rep", "業務員"),
    "sales_admin": Label("销售内勤", "Sales administrator", "銷售內勤"),
    "sales_manager": Label("销售经理", "Sales manager", "銷售經理"),
    "warehouse": Label("库管", "Warehouse keeper", "庫管"),
    "finance": Label("财务", "Finance", "財務"),
    "gm": Label("总经理", "General manager", "總經理"),
    "auditor": Label("审计", "Auditor", "審計"),
    "flow_admin": Label("流程管理员", "Flow administrator", "流程管理員"),
    "user_admin": Label("用户管理员", "User administrator", "使用者管理員"),
}

# Interface languages a user may choose (catalogues in webui/translations).
LANGUAGES = ("zh_Hans", "zh_Hant", "en")

# Auditors read everything and act on nothing; flow admins manage definitions, not documents.
NON_ACTING_ROLES = frozenset({"auditor"})
