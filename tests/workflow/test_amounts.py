from decimal import Decimal

import pytest

from workflow.amounts import upper_amount


@pytest.mark.parametrize(
    ("amount", "words"),
    [
        ("100", "壹佰元整"),
        ("0", "零元整"),
        ("12800.00", "壹万贰仟捌佰元整"),
        ("10005", "壹万零伍元整"),
        ("100000", "壹拾万元整"),
        ("1050", "壹仟零伍拾元整"),
        ("100000001", "壹亿零壹元整"),
        ("120000000", "壹亿贰仟万元整"),
        ("0.5", "伍角整"),
        ("0.05", "伍分"),
        ("12.05", "壹拾贰元零伍分"),
        ("3.45", "叁元肆角伍分"),
        ("2001.10", "贰仟零壹元壹角整"),
        ("10100", "壹万零壹佰元整"),
        ("-7", "负柒元整"),
        ("1.005", "壹元零壹分"),
    ],
)
def test_upper_amount(amount, words):
    assert upper_amount(Decimal(amount)) == words
