"""Engine messages in the reader's language, by their code (never by their English text).

The engine (workflow/) speaks English with a machine code: refusals carry `code`
(workflow/errors.py), field messages carry `code` and `values` (workflow/fields.MESSAGES).
The web layer translates them here; every code has an entry (tests/webui/test_i18n.py checks
that no code of the engine is missing), and each entry is a catalogue pair like any `t()`.
"""

from __future__ import annotations

from typing import Any

from webui.i18n import N_, tr

# What a person reads first about an error, by code: engine refusals and HTTP errors.
HEADLINES: dict[str, tuple[str, str]] = {
    "stale_revision": N_(
        "此单据已变更，请查看新版本。", "This document changed — review the new version."
    ),
    "conflict": N_(
        "有人同时修改了此单据，请刷新后重试。", "Someone changed this document at the same time."
    ),
    "claimed": N_("同事正在处理这张单据。", "A colleague is working on this document."),
    "not_owner": N_(
        "这张单据属于创建人，只有创建人可以处理。",
        "Only the colleague who created it may do this.",
    ),
    "self_review": N_("不能复核自己经手的单据。", "You may not review a document you worked on."),
    "already_reviewed": N_("你已经复核过此单据。", "You have already reviewed this document."),
    "role_not_allowed": N_("你的角色不能执行此操作。", "Your role may not do this."),
    "action_not_allowed": N_("此操作现在不可执行。", "This action is not possible now."),
    "checklist_incomplete": N_(
        "请逐项确认复核清单后再同意。", "Confirm every point of the checklist before approving."
    ),
    "duplicate_value": N_("另一张单据已使用此编号。", "Another document already holds this value."),
    "check_failed": N_("单据未通过检查。", "The document does not pass a check."),
    "over_limit": N_(
        "超出关联单据的可用余额。", "This takes more than the other document has left."
    ),
    "bulk_not_allowed": N_(
        "此流程的单据须逐张处理。", "Documents of this flow are decided one by one."
    ),
    "not_in_selection": N_(
        "这张单据不属于所选的流程和状态（或已流转），请逐张处理。",
        "This document is not of the selected flow and state (or it moved on); decide it on "
        "its own page.",
    ),
    "refused": N_("此操作被拒绝。", "This action was refused."),
    "self_administration": N_(
        "不能修改自己的角色或停用自己的账号，请另一位用户管理员处理。",
        "You may not change your own roles or disable yourself; ask another user administrator.",
    ),
    "password_change_required": N_(
        "请先修改管理员为你重置的密码。",
        "Change the password an administrator reset for you first.",
    ),
    "not_found": N_("单据不存在或你无权查看。", "Not found, or you may not see it."),
    "forbidden": N_("你无权执行此操作。", "You may not do this."),
    "unauthorized": N_("请先登录。", "Please sign in."),
    "invalid_data": N_("有些内容填写不正确。", "Some values are not valid."),
    "invalid_request": N_("请求的内容不正确。", "The request is not valid."),
    "invalid_definition": N_("流程定义有错误。", "The flow definition has errors."),
    "idempotency_key_reused": N_(
        "同一个幂等键被用于不同的请求。", "The same Idempotency-Key was sent with another request."
    ),
    "commit_outcome_unknown": N_(
        "保存时连接中断，无法确认是否已保存，请刷新后查看。",
        "The connection broke while saving; reload to see whether it was stored.",
    ),
    "workflow_error": N_("操作未能完成。", "The action could not be completed."),
    "csrf_failed": N_(
        "页面已过期，请返回刷新后重试。", "The page expired; go back, reload and retry."
    ),
    "bad_request": N_("请求无效。", "The request is not valid."),
    "method_not_allowed": N_("不支持此请求方式。", "This method is not allowed here."),
    "not_acceptable": N_("无法提供所请求的格式。", "The requested format is not available."),
    "too_large": N_("提交的内容太大。", "What was sent is too large."),
    "unsupported_file_type": N_(
        "只能添加 PDF、JPEG 或 PNG 文件。", "Only PDF, JPEG or PNG files can be attached."
    ),
    "unsupported_media_type": N_("不支持此内容类型。", "This content type is not supported."),
    "invalid": N_("内容无法处理。", "The request cannot be processed."),
    "too_many_requests": N_("请求过于频繁，请稍后再试。", "Too many requests; try again later."),
    "uri_too_long": N_("网址太长。", "The address is too long."),
    "headers_too_large": N_("请求头太大。", "The request headers are too large."),
    "internal_error": N_(
        "服务器出错，此次操作未生效。", "Something went wrong on our side; nothing was changed."
    ),
    "database_unavailable": N_(
        "数据库连接中断，未作任何更改，请稍后重试。",
        "The connection to the database broke; nothing was changed. Try again in a moment.",
    ),
    "unavailable": N_(
        "服务暂时不可用，请稍后再试。", "The service is unavailable; try again later."
    ),
    "error": N_("出错了。", "Something went wrong."),
}

# Field messages by code (workflow/fields.MESSAGES): the same `{name}` values.
FIELD_TEXTS: dict[str, tuple[str, str]] = {
    "required": N_("必填", "is required"),
    "unknown_field": N_("不是本流程的字段", "is not a field of this flow"),
    "not_object": N_("须为一行数据", "must be an object"),
    "data_not_object": N_("须为字段与值的对象", "must be an object of field values"),
    "number_expected": N_("须为数字，例如 12800.00", "must be a number such as 12800.00"),
    "not_finite": N_("须为有限的数字", "must be a finite number"),
    "decimal_as_text": N_(
        '须为文本形式的数字，例如 "12800.00"',
        'must be a decimal number written as text, such as "12800.00"',
    ),
    "not_decimal": N_(
        "“{value}”不是数字（只能用 0-9 和一个小数点）",
        "`{value}` is not a decimal number (digits 0-9 and one point)",
    ),
    "too_many_places": N_(
        "小数位超过 {places} 位；不会自动四舍五入",
        "has more than {places} decimal places; it will not be rounded",
    ),
    "too_many_digits": N_(
        "数值太大（超过 {digits} 位）", "is too large (more than {digits} digits)"
    ),
    "whole_number": N_("须为整数", "must be a whole number"),
    "whole_number_text": N_(
        "须为整数，不能带小数或指数",
        "must be a whole number written without a fraction or an exponent",
    ),
    "too_large": N_("数值太大", "is too large"),
    "text_expected": N_("须为文本", "must be text"),
    "control_characters": N_("含有控制字符", "contains control characters"),
    "too_long": N_("超过 {limit} 个字符", "is longer than {limit} characters"),
    "too_short": N_("少于 {limit} 个字符", "is shorter than {limit} characters"),
    "date_format": N_("日期格式须为 YYYY-MM-DD", "must be a date written YYYY-MM-DD"),
    "not_a_date": N_("“{value}”不是有效日期", "`{value}` is not a real date"),
    "boolean_expected": N_("须为是或否", "must be true or false"),
    "at_least": N_("不得小于 {limit}", "must be at least {limit}"),
    "at_most": N_("不得大于 {limit}", "must be at most {limit}"),
    "one_of": N_("须为以下之一：{choices}", "must be one of: {choices}"),
    "rows_expected": N_("须为若干行", "must be a list of rows"),
    "too_many_rows": N_("超过 {limit} 行", "has more than {limit} rows"),
    "too_few_rows": N_("至少需要 {limit} 行", "needs at least {limit} rows"),
}


def headline(code: str) -> str | None:
    """The translated headline of an error code, or None if the code has none."""
    pair = HEADLINES.get(code)
    return tr(pair) if pair is not None else None


def field_text(message: Any) -> str:
    """A field message in the request's language: by its code when it has one (FieldMessage),
    else as written (messages of forms are already t() texts)."""
    code = getattr(message, "code", None)
    pair = FIELD_TEXTS.get(code) if code else None
    if pair is None:
        return str(message)
    return tr(pair, **getattr(message, "values", {}))
