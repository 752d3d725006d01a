"""Money in words as Chinese forms write it (大写金额): 12800.00 → 壹万贰仟捌佰元整."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

DIGITS = "零壹贰叁肆伍陆柒捌玖"
GROUP_UNITS = ("", "万", "亿", "万亿")


def _group(n: int) -> str:
    """0 < n < 10000 in words, zeros inside said once (1050 → 壹仟零伍拾)."""
    out, zero = "", False
    for size, unit in ((1000, "仟"), (100, "佰"), (10, "拾"), (1, "")):
        digit = n // size % 10
        if digit == 0:
            zero = bool(out)
        else:
            out += ("零" if zero else "") + DIGITS[digit] + unit
            zero = False
    return out


def upper_amount(amount: Decimal) -> str:
    """The amount in 大写, rounded to the fen: 100 → 壹佰元整, 12.05 → 壹拾贰元零伍分."""
    amount = Decimal(amount).quantize(Decimal("0.01"), ROUND_HALF_UP)
    if amount < 0:
        return "负" + upper_amount(-amount)
    yuan = int(amount)
    jiao, fen = divmod(int((amount - yuan) * 100), 10)
    groups = []
    while yuan:
        groups.append(yuan % 10000)
        yuan //= 10000
    if len(groups) > len(GROUP_UNITS):
        raise ValueError("amount too large to write in words")
    out, gap = "", False
    for index in reversed(range(len(groups))):
        group = groups[index]
        if group == 0:
            gap = bool(out)
            continue
        if out and (gap or group < 1000):
            out += "零"
        out += _group(group) + GROUP_UNITS[index]
        gap = False
    if out:
        out += "元"
    if not jiao and not fen:
        return (out or "零元") + "整"
    if jiao:
        out += DIGITS[jiao] + "角"
    elif out:
        out += "零"
    return out + (DIGITS[fen] + "分" if fen else "整")
