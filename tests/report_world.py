"""Reports on a fixed data set whose figures were computed by hand (China time, UTC+8).

The documents walk their flows through the real services under a frozen clock, so the report
tables are filled by the same listener as in production.

    A shipment SO-1 甲 12800.00 paid: created 11-02 09:00, double check 4 h, shipped 11-03,
      delivered 11-30 23:59 (completed in November, not December)
    B shipment SO-1 甲 500.00 unpaid: GM exception rejected after 2 h (未收款), resubmitted,
      approved after 6 h, waits in double check
    C invoicing SO-1 12800.00: request check rejected after 1 h (未收款), then approved after
      2 h; issued, issued check 2 h (invoiced)
    D expense 2330.50: created 10-31 23:30 (October), withdrawn 12-01 00:00:30 (December)
    E tender deposit 50000.00: deposit check 3 h, paid 11-13 (open deposit)
    F shipment SO-2 乙 2000.00 unpaid: GM exception 1 h, double check 1 h, shipped 11-21
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from freezegun import freeze_time

from workflow import services

CST = dt.timezone(dt.timedelta(hours=8))

SHIP = {
    "customer": "甲医药",
    "consignee": "刘娟",
    "ship_address": "安庆市人民路 88 号",
    "consignee_phone": "0556-5551234",
    "order_no": "SO-1",
    "sales_rep": "王磊",
    "contract_amount": "30000.00",
    "items": [{"product": "注射器", "qty": 1000, "unit_price": "12.80"}],
    "amount": "12800.00",
    "carrier": "物流",
    "ship_by": "2026-12-01",
}
PAID = {"paid": True, "payment_ref": "HD-1"}  # confirmed by finance (款到发货)
INVOICE = {
    "order_no": "SO-1",
    "invoice_type": "增值税普通发票",
    "buyer_title": "甲医药有限公司",
    "buyer_tax_id": "91340800MA2TX3K59P",
    "lines": [
        {"product": "注射器", "qty": 1000, "unit_price": "12.80", "tax_rate": "0.13",
         "net": "11327.43", "tax": "1472.57"}
    ],
    "amount": "12800.00",
}  # fmt: skip
EXPENSE = {
    "claimant": "徐",
    "department": "销售部",
    "trip": "合肥",
    "period_start": "2026-10-30",
    "period_end": "2026-10-31",
    "receipts": [
        {"date": "2026-10-30", "category": "交通", "amount": "2330.50", "receipt_no": "R1"}
    ],
    "amount": "2330.50",
}
DEPOSIT = {
    "tender_name": "某医院耗材采购",
    "agency": "某招标代理",
    "amount": "50000.00",
    "bid_date": "2026-12-10",
    "expected_refund_date": "2027-01-20",
    "payee_account": "专户",
}


class Clock:
    def __init__(self) -> None:
        self.frozen = freeze_time("2026-11-01T00:00:00+08:00")
        self.factory = self.frozen.start()

    def at(self, text: str) -> None:
        self.factory.move_to(dt.datetime.fromisoformat(text).replace(tzinfo=CST))

    def stop(self) -> None:
        self.frozen.stop()


class World:
    def __init__(self, session, people, clock: Clock) -> None:
        self.session, self.people, self.clock = session, people, clock

    def create(self, when: str, who: str, flow: str, data: dict[str, Any]) -> int:
        self.clock.at(when)
        return services.create_document(self.session, self.people[who], flow, data).document.id

    def act(self, when: str, who: str, doc: int, action: str, comment: str = "") -> None:
        self.clock.at(when)
        process = services.get_document(self.session, doc, self.people[who])
        review = process.state.review
        checks = None
        if action == "approve" and review is not None and review.checklist:
            checks = {item.id: True for item in review.checklist}  # every point confirmed
        revision = process.document.revision
        services.act(self.session, doc, self.people[who], action, revision, comment, checks=checks)

    def confirm_payment(self, when: str, who: str, doc: int, data: dict[str, Any]) -> None:
        """Finance records the payment facts and confirms them, at the same instant."""
        self.edit(when, who, doc, data)
        self.act(when, who, doc, "confirm_payment")

    def edit(self, when: str, who: str, doc: int, data: dict[str, Any]) -> None:
        self.clock.at(when)
        revision = services.get_document(self.session, doc, self.people[who]).document.revision
        services.edit_document(self.session, doc, self.people[who], data, revision)


def build_world(session, people) -> dict[str, int]:
    """Create documents A-F (see the module docstring) under a frozen clock; returns their ids."""
    clock = Clock()
    try:
        w = World(session, people, clock)
        ids = {}
        ids["A"] = a = w.create("2026-11-02T09:00", "zhang", "shipment", SHIP)
        w.act("2026-11-02T10:00", "zhang", a, "submit")
        w.confirm_payment("2026-11-02T10:00", "qian", a, PAID)
        w.act("2026-11-02T12:00", "wang", a, "approve")
        w.act("2026-11-02T14:00", "li", a, "approve")
        w.edit("2026-11-03T09:00", "li", a, {"tracking_no": "SF1"})
        w.act("2026-11-03T09:05", "li", a, "ship")
        w.edit("2026-11-30T23:58", "zhang", a, {"delivery_note_signed": True})
        w.act("2026-11-30T23:59", "zhang", a, "confirm_delivery")

        b_data = {**SHIP, "items": [{"product": "口罩", "qty": 10, "unit_price": "50.00"}]}
        ids["B"] = b = w.create(
            "2026-11-05T09:00", "zhang", "shipment", {**b_data, "amount": "500.00"}
        )
        w.act("2026-11-05T09:30", "zhang", b, "submit")
        w.act("2026-11-05T09:30", "qian", b, "confirm_payment")  # not paid
        w.act("2026-11-05T11:30", "ma", b, "reject", "未收款")
        w.act("2026-11-06T09:30", "zhang", b, "submit")
        w.act("2026-11-06T09:30", "qian", b, "confirm_payment")
        w.act("2026-11-06T10:30", "ma", b, "approve")
        w.act("2026-11-06T15:30", "liu", b, "approve")

        billed = {"shipments": [{"shipment": a, "amount": "12800.00"}]}
        ids["C"] = c = w.create("2026-11-10T09:00", "zhang", "invoicing", {**INVOICE, **billed})
        w.act("2026-11-10T09:10", "zhang", c, "submit")
        w.act("2026-11-10T10:10", "wang", c, "reject", "未收款")
        w.act("2026-11-10T11:00", "zhang", c, "submit")
        w.act("2026-11-10T12:00", "chen", c, "approve")
        w.act("2026-11-10T13:00", "zhao", c, "approve")
        issue = {"invoice_code": "0340", "invoice_number": "0881", "face_value": "12800.00"}
        w.edit("2026-11-11T08:50", "zhao", c, issue)
        w.act("2026-11-11T09:00", "zhao", c, "issue")
        w.act("2026-11-11T10:00", "wang", c, "approve")
        w.act("2026-11-11T11:00", "qian", c, "approve")

        ids["D"] = d = w.create("2026-10-31T23:30", "xu", "expense", EXPENSE)
        w.act("2026-12-01T00:00:30", "xu", d, "withdraw")

        ids["E"] = e = w.create("2026-11-12T09:00", "zhang", "tender_deposit", DEPOSIT)
        w.act("2026-11-12T10:00", "zhang", e, "submit")
        w.act("2026-11-12T12:00", "liu", e, "approve")
        w.act("2026-11-12T13:00", "zhao", e, "approve")
        w.edit("2026-11-13T09:00", "qian", e, {"payment_ref": "P1", "paid_on": "2026-11-13"})
        w.act("2026-11-13T10:00", "qian", e, "pay")

        f_data = {
            **SHIP,
            "customer": "乙医院",
            "order_no": "SO-2",
            "sales_rep": "李明",
            "contract_amount": None,
            "items": [{"product": "口罩", "qty": 40, "unit_price": "50.00"}],
            "amount": "2000.00",
        }
        ids["F"] = f = w.create("2026-11-20T09:00", "chen", "shipment", f_data)
        w.act("2026-11-20T10:00", "chen", f, "submit")
        w.act("2026-11-20T10:00", "qian", f, "confirm_payment")  # not paid
        w.act("2026-11-20T10:30", "he", f, "approve")
        w.act("2026-11-20T11:00", "sun", f, "approve")
        w.act("2026-11-20T11:30", "wang", f, "approve")
        w.act("2026-11-20T12:00", "zhou", f, "approve")
        w.edit("2026-11-21T09:00", "zhou", f, {"tracking_no": "SF2"})
        w.act("2026-11-21T09:30", "zhou", f, "ship")
        return ids
    finally:
        clock.stop()
