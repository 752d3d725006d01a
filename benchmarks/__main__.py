"""`make bench`: time the engine's hot paths on SQLite (and PostgreSQL with BENCH_DATABASE_URL).

Prints one line per measurement: create+submit, approval, inbox with many documents open, and
audit verification — medians over repeated runs, so a change can be compared before and after.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from workflow import accounts, audit, security, services
from workflow.db import Base, make_engine
from workflow.queries import inbox

ROOT = Path(__file__).resolve().parent.parent
SHIPMENT = {
    "customer": "安庆某医药公司",
    "order_no": "SO-2026-1024",
    "items": [{"product": "阿莫西林胶囊", "qty": 100, "unit_price": "128.00"}],
    "amount": "12800.00",
    "carrier": "物流",
    "ship_by": "2026-12-01",
    "paid": True,
}
security.SCRYPT_N = 2**4  # user creation is not what is measured here


def timed(label: str, runs: int, fn: Callable[[], object]) -> None:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    median = statistics.median(samples) * 1000
    print(f"{label:<48} median {median:8.2f} ms   ({runs} runs)")


def bench(url: str, documents: int = 300) -> None:
    engine = make_engine(url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS fuhe_bench CASCADE; CREATE SCHEMA fuhe_bench"))
        engine.dispose()
        engine = make_engine(url, connect_args={"options": "-csearch_path=fuhe_bench"})
    Base.metadata.create_all(engine)
    session: Session = sessionmaker(engine, expire_on_commit=False)()
    services.publish_files(session, sorted((ROOT / "definitions").glob("*.yaml")))
    people = {
        name: accounts.create_user(session, name, "bench-password", [role])
        for name, role in [("zhang", "sales_admin"), ("wang", "sales_admin"), ("li", "warehouse")]
    }
    ids: list[int] = []

    def create_and_submit() -> None:
        doc = services.create_document(session, people["zhang"], "shipment", SHIPMENT).document
        services.act(session, doc.id, people["zhang"], "submit", 1)
        ids.append(doc.id)

    print(f"== {engine.dialect.name}")
    timed("create + submit a shipment", documents, create_and_submit)
    pending = iter(list(ids))
    timed(
        "approve (1 of 2)",
        documents // 2,
        lambda: services.act(session, next(pending), people["wang"], "approve", 1),
    )
    timed(
        f"inbox page of 50 ({documents} documents open)",
        20,
        lambda: inbox(session, people["li"], limit=50),
    )
    timed("audit verify (whole chain)", 3, lambda: audit.verify(session))
    session.close()
    engine.dispose()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        bench(f"sqlite:///{tmp}/bench.sqlite3")
    if os.environ.get("BENCH_DATABASE_URL"):
        bench(os.environ["BENCH_DATABASE_URL"])


if __name__ == "__main__":
    main()
