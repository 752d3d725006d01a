"""Time the reports at scale: `python -m benchmarks.reports [--documents 1000000] [URL]`.

`bench_reports(session)` times what a manager opens (the overview of a month, of a year and of
one flow; the contract list; the documents behind a figure) and returns the medians in ms;
`make bench` calls it on its generated data. Run alone, this module generates the data through
the same bulk path (`benchmarks.data.generate`: documents, audit chains and the report rows
`workflow.report_index` would keep) and times the reports on it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from benchmarks import data
from workflow import audit, reports, security
from workflow.db import make_engine


def timed(runs: int, fn: Callable[[], object]) -> float:
    samples = []
    for _ in range(runs):
        begin = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - begin)
    return round(statistics.median(samples) * 1000, 1)


def last_full_month(today: dt.date | None = None) -> str:
    """The month before this one (the generated data ends two days ago): e.g. 2026-10."""
    first = (today or dt.datetime.now(dt.UTC).date()).replace(day=1)
    last = first - dt.timedelta(days=1)
    return f"{last.year}-{last.month:02d}"


def bench_reports(session: Session, period: str = "2026-11", runs: int = 5) -> dict[str, float]:
    """Median milliseconds of each report a manager opens, on whatever data `session` sees."""
    month = reports.parse_period(period)
    year = reports.parse_period(period[:4])
    out = {
        f"overview {period} (all flows)": timed(
            runs, lambda: reports.summary(session, reports.Scope(month))
        ),
        f"overview {period} (shipment)": timed(
            runs, lambda: reports.summary(session, reports.Scope(month, "shipment"))
        ),
        f"overview {period[:4]} (all flows, 12 months)": timed(
            max(1, runs // 2), lambda: reports.summary(session, reports.Scope(year))
        ),
        f"contract list {period}": timed(
            runs, lambda: reports.contracts(session, reports.Scope(month))
        ),
        f"documents behind 'open' at {period}": timed(
            runs, lambda: reports.figure_documents(session, reports.Scope(month), "open")
        ),
    }
    session.rollback()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url", nargs="?", help="database URL (default: a temporary SQLite file)")
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--period", default=None, help="default: last month")
    args = parser.parse_args()
    security.SCRYPT_N = 2**4
    audit.configure(audit.Keyring.from_settings(os.environ.get("AUDIT_KEY", secrets.token_hex(32))))
    with tempfile.TemporaryDirectory() as folder:
        url = args.url or f"sqlite:///{folder}/reports-bench.sqlite3"
        schema = None
        if url.startswith("postgresql"):
            schema = "fuhe_rbench"
            admin = make_engine(url)
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
                conn.execute(text(f"CREATE SCHEMA {schema}"))
            admin.dispose()
            url = f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
        engine = make_engine(url)
        session = sessionmaker(engine, expire_on_commit=False)()
        # The same bulk path as make bench.
        gen = data.generate(session, url, schema, data.scaled(args.documents))
        print(f"== {engine.dialect.name}: {gen.documents:,} documents in {gen.seconds:.0f} s")
        session = sessionmaker(make_engine(url), expire_on_commit=False)()
        for label, ms in bench_reports(session, args.period or last_full_month()).items():
            print(f"{label:<48} median {ms:8.1f} ms")
        session.close()


if __name__ == "__main__":
    main()
