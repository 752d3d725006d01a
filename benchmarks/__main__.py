"""`make bench`: the app over HTTP beside the stack's own ceiling, at a generated size.

For SQLite (always) and PostgreSQL (BENCH_DATABASE_URL, in its own schema `fuhe_bench`):
  1. data      bulk-generate documents, users, open tasks and audit chains
  2. ceiling   gunicorn serving benchmarks.ceiling:app (one transactional write), under locust
  3. review    gunicorn serving wsgi:app, locust clients doing create/submit/approve/approve;
               then clients that only approve, between the ceiling and the ceiling measured
               again (a shared host's speed drifts: the ratio to both is printed, beside a
               pure-Python speed probe)
  4. reads     inbox (also a reviewer who decided many open documents), document, history,
               audit search: p50/p95
  5. scale-out (PostgreSQL) one vs two app instances: CPU ms per request in the app and in
               PostgreSQL, a projection for N hosts, and a check for double advances / lost
               approvals
  6. memory    worker RSS after warm-up and after BENCH_MEMORY_REQUESTS requests
Every figure is printed with its ratio and the load average. BENCH_SMALL=1 runs everything at a
small size and short durations (CI). Exit status 1 if a consistency check fails.
See docs/performance.md.
"""

from __future__ import annotations

import csv
import http.client
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, select, text
from sqlalchemy.orm import Session, sessionmaker

from benchmarks import ceiling as ceiling_app
from benchmarks import data, reports
from benchmarks.server import (
    BIN,
    ROOT,
    Gunicorn,
    cpu_seconds,
    cpu_used,
    load_average,
    rss_mb,
)
from workflow import accounts, audit, security, services
from workflow.db import make_engine
from workflow.models import User

security.SCRYPT_N = 2**4  # the benchmark's own users; sign-in by password is not measured
SMALL = os.environ.get("BENCH_SMALL") == "1"
DURATION = float(os.environ.get("BENCH_DURATION", "4" if SMALL else "20"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "16"))
WORKERS = int(os.environ.get("WEB_CONCURRENCY", "2"))
READS = int(os.environ.get("BENCH_READS", "20" if SMALL else "200"))
MEMORY_REQUESTS = int(os.environ.get("BENCH_MEMORY_REQUESTS", "300" if SMALL else "10000"))
SCHEMA = os.environ.get("BENCH_SCHEMA", "fuhe_bench")  # never the public schema's tables
DATA_TARGET_S = 120.0
READ_TARGET_MS = 25.0
P95_TARGET_MS = 60.0
SQLITE_DEFAULT = data.Sizes(200_000, 10_000, 20_000, 10_000)  # SQLite loads more slowly


class Report:
    """Prints each figure on one line with its ratio and the machine's load average."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def figure(self, label: str, value: str, ratio: str = "", note: str = "") -> None:
        ratio = f"ratio {ratio}" if ratio else ""
        print(f"  {label:<40} {value:<34} {ratio:<22} {load_average()} {note}".rstrip(), flush=True)

    def problem(self, message: str) -> None:
        self.problems.append(message)
        print(f"  PROBLEM: {message}", flush=True)


def sizes_for(dialect: str) -> data.Sizes:
    if SMALL:
        return data.SMALL
    base = data.FULL if dialect == "postgresql" else SQLITE_DEFAULT
    docs = int(os.environ.get("BENCH_DOCUMENTS", base.documents))
    scale = docs / base.documents
    return data.Sizes(
        docs,
        int(os.environ.get("BENCH_USERS", base.users)),
        max(1, int(base.open_tasks * scale)),
        max(1, int(base.busy_decided * scale)),
    )


# --- load -----------------------------------------------------------------------------------------
@dataclass
class Load:
    rps: float  # all requests per second
    requests: int
    failures: int
    named: dict[str, dict[str, float]]  # name → {count, failures, rps, p50, p95, p99}
    acknowledged: list[tuple[Any, ...]]  # (document id, username) of each approval answered 200


def locust(user_class: str, host: str, tmp: Path, env: dict[str, str] | None = None) -> Load:
    """Run locust headless for DURATION seconds and read its CSV summary."""
    prefix = tmp / f"locust-{user_class}-{time.monotonic_ns()}"
    env = {**(env or {}), "BENCH_ACK_FILE": f"{prefix}_acknowledged.json"}
    cmd = [
        str(BIN / "locust"), "-f", str(ROOT / "benchmarks" / "locustfile.py"), "--headless",
        "-u", str(CLIENTS), "-r", str(CLIENTS), "-t", f"{max(1, round(DURATION))}s", "--host", host,
        "--csv", str(prefix), "--only-summary", "--loglevel", "ERROR", user_class,
    ]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **env}, check=False,
                          capture_output=True, text=True)  # fmt: skip
    if not Path(f"{prefix}_stats.csv").exists():
        raise RuntimeError(f"locust gave no statistics: {done.stderr[-2000:]}")
    named: dict[str, dict[str, float]] = {}
    total = {"rps": 0.0, "count": 0, "failures": 0}
    with open(f"{prefix}_stats.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            entry = {
                "count": int(row["Request Count"]),
                "failures": int(row["Failure Count"]),
                "rps": float(row["Requests/s"]),
                "p50": _number(row["50%"]),
                "p95": _number(row["95%"]),
                "p99": _number(row["99%"]),
            }
            if row["Name"] == "Aggregated":
                total = {k: entry[k] for k in ("rps", "count", "failures")}
            else:
                named[row["Name"]] = entry
    failures_file = Path(f"{prefix}_failures.csv")
    if total["failures"] and failures_file.exists():
        print("  locust failures:\n" + failures_file.read_text()[:1500], flush=True)
    ack = Path(env["BENCH_ACK_FILE"])
    acknowledged = [tuple(a) for a in json.loads(ack.read_text())] if ack.exists() else []
    return Load(float(total["rps"]), int(total["count"]), int(total["failures"]), named,
                acknowledged)  # fmt: skip


def _number(cell: str) -> float:
    """A locust CSV cell; N/A (no requests of that name) reads as 0."""
    try:
        return float(cell)
    except ValueError:
        return 0.0


def get(port: int, path: str, token: str) -> tuple[int, float]:
    """One GET (a new connection, as gunicorn's sync workers close each one); (status, ms)."""
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status, (time.perf_counter() - start) * 1000


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# --- one database ---------------------------------------------------------------------------
@dataclass
class Target:
    name: str
    url: str  # SQLAlchemy URL, schema and application name included (what the app gets)
    schema: str | None
    tmp: Path

    @property
    def is_pg(self) -> bool:
        return self.url.startswith("postgresql")


def pg_backends(session: Session, app_name: str) -> list[int]:
    rows = session.execute(
        text("SELECT pid FROM pg_stat_activity WHERE application_name = :a"), {"a": app_name}
    )
    return [r[0] for r in rows]


def run(target: Target, report: Report) -> None:
    print(f"== {target.name}: {CLIENTS} clients, {WORKERS} gunicorn workers, {DURATION:.0f} s runs",
          flush=True)  # fmt: skip
    control = target.url.replace("fuhe_bench_app", "fuhe_bench_ctl")  # not counted as the app
    engine = make_engine(control)
    session = sessionmaker(engine, expire_on_commit=False)()
    sizes = sizes_for(engine.dialect.name)
    gen = data.generate(session, target.url, target.schema, sizes)
    report.figure(
        "data: generated",
        f"{gen.documents:,} docs, {gen.users:,} users",
        f"{gen.seconds / DATA_TARGET_S:.2f} of 120 s",
        f"{gen.seconds:.1f} s; {gen.open_documents:,} open review tasks, {gen.events:,} events",
    )
    session = sessionmaker(make_engine(control), expire_on_commit=False)()
    # The managers' reports (issue 13) on the same data: the generator fills the report tables.
    period = reports.last_full_month()
    for label, ms in reports.bench_reports(session, period, runs=1 if SMALL else 3).items():
        report.figure(f"reports: {label}", f"{ms:,.1f} ms", note=f"{gen.documents:,} documents")
    if SMALL:
        result = audit.verify(session)
        session.commit()
        report.figure("data: audit verify", "ok" if result.ok else f"FAILED: {result.problem}",
                      note=f"{result.events:,} events, {result.chains:,} chains")  # fmt: skip
        if not result.ok:
            report.problem(f"audit verify failed on generated data: {result.problem}")
    setup = prepare_clients(session, gen, target.tmp)
    env = {"BENCH_SETUP": str(setup["file"])}
    log = target.tmp / "gunicorn.log"

    # 2. the ceiling (measured again after the approvals: see `approve_only`)
    report.figure("machine: speed probe", f"{speed_probe():.0f} ms", note=PROBE_NOTE)
    w, ceil_cpu = ceiling(target, session, log, report)

    # 3. review throughput
    server = Gunicorn("wsgi:app", WORKERS, app_env(target), log)
    try:
        warm(server, setup)
        warm_rss = [rss_mb(p) for p in server.worker_pids()]
        locust_warmup("ReviewCycle", server.url, target.tmp, env)
        before = max_document_id(session)
        cpu = Cpu(session, server, "fuhe_bench_app" if target.is_pg else None)
        load = locust("ReviewCycle", server.url, target.tmp, env)
        app_cpu = cpu.per_request(load.requests)
        approve = load.named.get("approve", {"rps": 0.0, "p50": 0, "p95": 0, "p99": 0,
                                             "count": 0, "failures": 0})  # fmt: skip
        ratio = approve["rps"] / w["rps"] if w["rps"] else 0.0
        report.figure("review: approvals/s", f"{approve['rps']:.1f} approvals/s",
                      f"{ratio:.2f} of ceiling (goal 0.50)",
                      f"{approve['failures']} failed")  # fmt: skip
        report.figure("review: approve latency",
                      f"p50 {approve['p50']:.0f} / p95 {approve['p95']:.0f} / "
                      f"p99 {approve['p99']:.0f} ms",
                      f"p95 {approve['p95'] / P95_TARGET_MS:.2f} of 60 ms")  # fmt: skip
        cycles = load.named.get("create", {}).get("rps", 0.0)
        report.figure("review: documents created/s", f"{cycles:.1f} docs/s",
                      note=f"all requests {load.rps:.0f}/s, {load.failures} failed")  # fmt: skip
        report.figure(
            "review: CPU ms per request",
            app_cpu.describe(),
            f"{app_cpu.total / ceil_cpu.total:.1f}x ceiling" if ceil_cpu.total else "",
        )
        if load.failures:
            report.problem(f"{load.failures} review requests failed")
        check_consistency(session, before, load.acknowledged, report)

        # 3b. approvals alone: the request the ceiling stands for, between two ceilings
        report.figure("machine: speed probe", f"{speed_probe():.0f} ms", note=PROBE_NOTE)
        approved = approve_only(target, session, server, setup, env, w["rps"], ceil_cpu, report)
        report.figure("machine: speed probe", f"{speed_probe():.0f} ms", note=PROBE_NOTE)
        again, _ = ceiling(target, session, log, report, "ceiling again")
        around = (w["rps"] + again["rps"]) / 2
        report.figure("approve only: to the ceilings around it", f"{approved:.1f} approvals/s",
                      f"{approved / around:.2f} of {around:.0f}/s (goal 0.50)" if around else "",
                      f"ceiling {w['rps']:.0f}/s before, {again['rps']:.0f}/s after")  # fmt: skip

        # 4. reads
        served = load.requests + reads(server.port, session, setup, report)

        # 6. memory
        top_up(server.port, setup, max(0, MEMORY_REQUESTS - served))
        after_rss = [rss_mb(p) for p in server.worker_pids()]
        report.figure("memory: RSS per worker after warm-up",
                      " / ".join(f"{r:.0f} MB" for r in warm_rss))  # fmt: skip
        report.figure(f"memory: RSS after {max(served, MEMORY_REQUESTS):,} requests",
                      " / ".join(f"{r:.0f} MB" for r in after_rss),
                      f"{max(after_rss) / max(warm_rss):.2f} of warm-up")  # fmt: skip

        # 5. scale-out
        if target.is_pg:
            scale_out(target, session, server, approve["rps"], app_cpu, env, log, report)
    finally:
        server.stop()
    session.close()


def ceiling(
    target: Target, session: Session, log: Path, report: Report, name: str = "ceiling"
) -> tuple[dict[str, float], CpuCost]:
    """benchmarks.ceiling:app (one transactional write) under the same gunicorn and load."""
    ceiling_engine = ceiling_app.engine_for(target.url, target.schema)
    ceiling_app.prepare(ceiling_engine)
    ceiling_env = {"CEILING_DATABASE_URL": target.url.replace("fuhe_bench_app", "fuhe_bench_ceil")}
    if target.schema:
        ceiling_env["CEILING_SCHEMA"] = target.schema
    server = Gunicorn("benchmarks.ceiling:app", WORKERS, ceiling_env, log)
    try:
        locust_warmup("Ceiling", server.url, target.tmp)
        cpu = Cpu(session, server, "fuhe_bench_ceil" if target.is_pg else None)
        ceil = locust("Ceiling", server.url, target.tmp)
        ceil_cpu = cpu.per_request(ceil.requests)
    finally:
        server.stop()
    written = ceiling_app.total_writes(ceiling_engine)
    ceiling_engine.dispose()
    w = ceil.named.get("write", {"rps": 0.0, "p50": 0, "p95": 0, "p99": 0})
    report.figure(f"{name}: one transactional write", f"{w['rps']:.0f} req/s",
                  note=f"p50 {w['p50']:.0f} / p95 {w['p95']:.0f} / p99 {w['p99']:.0f} ms; "
                  f"{written:,} rows written")  # fmt: skip
    report.figure(f"{name}: CPU ms per request", ceil_cpu.describe())
    return w, ceil_cpu


PROBE_NOTE = "one core, a fixed pure-Python loop (best of 3): higher is a slower machine"


def speed_probe() -> float:
    """Milliseconds for a fixed pure-Python workload on one core, best of three: how fast the
    machine runs Python right now (a shared host's speed drifts between runs)."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        total = 0
        for i in range(2_000_000):
            total += i % 7
        best = min(best, time.perf_counter() - start)
    return best * 1000


def approval_queues(session: Session, clients: int) -> list[list[tuple[int, int]]]:
    """Generated shipments waiting in the double check with no approval yet this round, dealt
    out to the clients (each approves its own as its two reviewers), as (id, revision)."""
    rows = session.execute(
        text(
            "SELECT d.id, d.revision FROM documents d WHERE d.flow_name = 'shipment'"
            " AND d.state = 'double_check' AND NOT EXISTS (SELECT 1 FROM reviews r"
            "  WHERE r.document_id = d.id AND r.round = d.review_round)"
            " ORDER BY d.id"
        )
    ).all()
    session.commit()
    queues: list[list[tuple[int, int]]] = [[] for _ in range(clients)]
    for n, row in enumerate(rows):
        queues[n % clients].append((row.id, row.revision))
    return queues


APPROVE_ONLY_MINIMUM = 200 if SMALL else 2000  # shipments waiting, dealt out to the clients


def waiting_shipments(session: Session, setup: dict[str, Any], count: int) -> None:
    """`count` more shipments waiting in the double check, through the engine (created by the
    first client's creator, payment confirmed by its finance colleague)."""
    names = setup["trios"][0]["names"]
    creator, payer = (
        session.scalars(select(User).where(User.username == n)).one() for n in (names[0], names[3])
    )
    paid = {"paid": True, "held_orders": 0, "payment_ref": "BENCH"}
    for _ in range(count):
        process = services.create_document(session, creator, "shipment", setup["shipment"])
        doc_id = process.document.id
        services.act(session, doc_id, creator, "submit", 1)
        services.edit_document(session, doc_id, payer, paid, 1)
        services.act(session, doc_id, payer, "confirm_payment", 2)


def approve_only(
    target: Target,
    session: Session,
    server: Gunicorn,
    setup: dict[str, Any],
    env: dict[str, str],
    ceiling_rps: float,
    ceil_cpu: CpuCost,
    report: Report,
) -> float:
    """Clients that only approve (two distinct reviewers per waiting shipment) for DURATION
    seconds, or until the waiting shipments run out: approvals/s beside the ceiling."""
    queues = approval_queues(session, CLIENTS)
    if sum(map(len, queues)) < APPROVE_ONLY_MINIMUM:  # a small data set: top it up
        waiting_shipments(session, setup, APPROVE_ONLY_MINIMUM - sum(map(len, queues)))
        queues = approval_queues(session, CLIENTS)
    waiting = sum(map(len, queues))
    path = target.tmp / "bench-queues.json"
    path.write_text(json.dumps(queues))
    last_event = session.scalar(text("SELECT max(id) FROM audit_events")) or 0
    session.commit()
    cpu = Cpu(session, server, "fuhe_bench_app" if target.is_pg else None)
    load = locust("ApproveOnly", server.url, target.tmp, {**env, "BENCH_QUEUES": str(path)})
    cost = cpu.per_request(load.requests)
    approve = load.named.get("approve", {"rps": 0.0, "p50": 0, "p95": 0, "p99": 0,
                                         "count": 0, "failures": 0})  # fmt: skip
    ratio = approve["rps"] / ceiling_rps if ceiling_rps else 0.0
    report.figure("approve only: approvals/s", f"{approve['rps']:.1f} approvals/s",
                  f"{ratio:.2f} of ceiling (goal 0.50)",
                  f"{int(approve['count']):,} approvals of {waiting:,} waiting shipments,"
                  f" {int(approve['failures'])} failed")  # fmt: skip
    report.figure("approve only: latency",
                  f"p50 {approve['p50']:.0f} / p95 {approve['p95']:.0f} / "
                  f"p99 {approve['p99']:.0f} ms",
                  f"p95 {approve['p95'] / P95_TARGET_MS:.2f} of 60 ms")  # fmt: skip
    times = f"{cost.total / ceil_cpu.total:.1f}x ceiling" if ceil_cpu.total else ""
    report.figure("approve only: CPU ms per approval", cost.describe(), times)
    if load.failures:
        report.problem(f"{load.failures} approvals failed")
    check_approvals(session, waiting, last_event, load.acknowledged, report)
    return float(approve["rps"])


def check_approvals(
    session: Session,
    waiting: int,
    last_event: int,
    acknowledged: list[tuple[Any, ...]],
    report: Report,
) -> None:
    """After the approve-only run: no document approved twice by one person or past its quorum,
    none moved on twice, every acknowledged approval stored."""
    touched = sorted({a[0] for a in acknowledged})
    if not touched:
        report.problem("no approval was acknowledged: nothing was measured")
        return
    stored = {
        (r.document_id, r.username)
        for r in session.execute(
            text(
                "SELECT r.document_id, u.username FROM reviews r JOIN users u ON u.id = r.user_id"
                " JOIN documents d ON d.id = r.document_id"
                " WHERE r.document_id IN :ids AND r.decision = 'approve'"
                " AND r.round = d.review_round"
            ).bindparams(bindparam("ids", expanding=True)),
            {"ids": touched},
        )
    }
    advances = dict(
        session.execute(
            text(
                "SELECT e.document_id, count(*) FROM audit_events e WHERE e.document_id IN :ids"
                " AND e.action = 'approve' AND e.to_state <> e.from_state AND e.id > :last"
                " GROUP BY e.document_id"
            ).bindparams(bindparam("ids", expanding=True)),
            {"ids": touched, "last": last_event},
        ).all()
    )
    session.commit()
    lost = [a for a in acknowledged if (a[0], a[1]) not in stored]
    double = [d for d, n in advances.items() if n > 1]
    report.figure("consistency: after approve only", f"{len(double)} double advances, "
                  f"{len(lost)} lost", note=f"{len(touched):,} documents of {waiting:,}, "
                  f"{len(acknowledged):,} approvals acknowledged")  # fmt: skip
    if double or lost:
        report.problem(f"approve only: double advances {double[:5]}, lost {lost[:5]}")


@dataclass
class CpuCost:
    app_ms: float
    db_ms: float | None

    @property
    def total(self) -> float:
        return self.app_ms + (self.db_ms or 0.0)

    def describe(self) -> str:
        if self.db_ms is None:
            return f"{self.app_ms:.2f} ms (app workers, SQLite in-process)"
        return f"app {self.app_ms:.2f} ms + PostgreSQL {self.db_ms:.2f} ms"


class Cpu:
    """CPU of the app's processes (gunicorn master and workers) and of its PostgreSQL
    backends (found by application_name), between construction and per_request()."""

    def __init__(self, session: Session, server: Gunicorn | list[Gunicorn], app_name: str | None):
        self.session, self.app_name = session, app_name
        self.servers = server if isinstance(server, list) else [server]
        self.app_before = cpu_seconds(self._app_pids())
        self.db_before = cpu_seconds(self._db_pids())

    def _app_pids(self) -> list[int]:
        return [pid for s in self.servers for pid in s.pids()]

    def _db_pids(self) -> list[int]:
        if self.app_name is None:
            return []
        pids = pg_backends(self.session, self.app_name)
        self.session.commit()
        return pids

    def per_request(self, requests: int) -> CpuCost:
        app = cpu_used(self.app_before, cpu_seconds(self._app_pids()))
        db = cpu_used(self.db_before, cpu_seconds(self._db_pids())) if self.app_name else None
        n = max(requests, 1)
        return CpuCost(app * 1000 / n, db * 1000 / n if db is not None else None)


def app_env(target: Target) -> dict[str, str]:
    return {
        "DATABASE_URL": target.url,
        "SECRET_KEY": "bench-secret-key-not-for-production",
        "FUHE_INSTANCE_DIR": str(target.tmp / "instance"),
    }


def locust_warmup(user_class: str, host: str, tmp: Path, env: dict[str, str] | None = None) -> None:
    """A short run first, so connections, caches and compiled flows are warm when measured."""
    global DURATION
    saved, DURATION = DURATION, min(2.0, DURATION)
    try:
        locust(user_class, host, tmp, env)
    finally:
        DURATION = saved


def warm(server: Gunicorn, setup: dict[str, Any]) -> None:
    for _ in range(WORKERS * 4):
        get(server.port, "/api/v1/tasks?limit=50", setup["reviewer"])


def max_document_id(session: Session) -> int:
    value = session.scalar(text("SELECT coalesce(max(id), 0) FROM documents"))
    session.commit()
    return int(value or 0)


def prepare_clients(session: Session, gen: data.Generated, tmp: Path) -> dict[str, Any]:
    """Users with bearer tokens per client (creator, second sales administrator, warehouse
    keeper, and the finance colleague who confirms the payment), and tokens for the readers;
    written to a file locust reads."""
    trios = []
    roles = ("sales_admin", "sales_admin", "warehouse", "finance")
    for n in range(CLIENTS):
        names = (f"bench_c{n}", f"bench_a{n}", f"bench_w{n}", f"bench_f{n}")
        for name, role in zip(names, roles, strict=True):
            accounts.create_user(session, name, "bench-password", [role])
        tokens = [accounts.issue_token(session, name) for name in names]
        trios.append({"tokens": tokens, "names": names})
    shipment = next(p for p in data.plan_flows(session) if p.name == "shipment")
    double_check = next(s.review for s in shipment.steps if s.source == "double_check")
    session.commit()
    setup = {
        "trios": trios,
        "shipment": shipment.data,
        # A reviewer who checked every point of the double check's checklist confirms them.
        "checks": {item.id: True for item in double_check.checklist} if double_check else {},
        "reviewer": accounts.issue_token(session, gen.reviewer),
        "busy": accounts.issue_token(session, gen.busy),
        "auditor": accounts.issue_token(session, gen.auditor),
        "reviewer_name": gen.reviewer,
        "documents": gen.documents,
    }
    path = tmp / "bench-setup.json"
    path.write_text(json.dumps(setup))
    setup["file"] = path
    return setup


def check_consistency(
    session: Session, after_id: int, acknowledged: list[tuple[Any, ...]], report: Report
) -> None:
    """Every document made by the load: its state agrees with its approvals, no document moved
    on twice, and every acknowledged approval is stored."""
    rows = session.execute(
        text(
            "SELECT d.id, d.state, d.review_round,"
            " (SELECT count(*) FROM reviews r WHERE r.document_id = d.id"
            "   AND r.decision = 'approve') AS approvals,"
            " (SELECT count(DISTINCT r.user_id) FROM reviews r WHERE r.document_id = d.id"
            "   AND r.decision = 'approve') AS reviewers,"
            " (SELECT count(*) FROM audit_events e WHERE e.document_id = d.id"
            "   AND e.action = 'approve' AND e.to_state <> e.from_state) AS advances"
            " FROM documents d WHERE d.id > :after"
        ),
        {"after": after_id},
    ).all()
    session.commit()
    stored = sum(r.approvals for r in rows)
    kept = {
        (r.document_id, r.username)
        for r in session.execute(
            text(
                "SELECT r.document_id, u.username FROM reviews r JOIN users u ON u.id = r.user_id"
                " WHERE r.document_id > :after AND r.decision = 'approve'"
            ),
            {"after": after_id},
        )
    }
    session.commit()
    double = [r.id for r in rows if r.advances > 1 or r.approvals > 2]
    wrong = [
        r.id
        for r in rows
        if (r.state == "ready_to_ship") != (r.approvals == 2 and r.reviewers == 2)
        or r.advances != (1 if r.state == "ready_to_ship" else 0)
    ]
    lost = len([a for a in acknowledged if (a[0], a[1]) not in kept])
    if not acknowledged:
        report.problem("no approval was acknowledged: nothing was measured")
    report.figure(
        "consistency: after the run",
        f"{len(double)} double advances, {lost} lost",
        note=f"{len(rows):,} documents, {stored:,} approvals stored,"
        f" {len(acknowledged):,} acknowledged, {len(wrong)} inconsistent",
    )
    if double or lost or wrong:
        report.problem(
            f"consistency: double advances {double[:5]}, lost {lost}, inconsistent {wrong[:5]}"
        )


def reads(port: int, session: Session, setup: dict[str, Any], report: Report) -> int:
    """p50/p95 of the read paths at the generated size; returns how many requests were made."""
    rng = random.Random(15)
    top = setup["documents"]
    busy_decided = session.scalar(
        text(
            "SELECT count(*) FROM reviews r JOIN users u ON u.id = r.user_id WHERE u.username = :u"
        ),
        {"u": data.BUSY_USER},
    )
    session.commit()
    cases = [
        ("reads: inbox (a reviewer)", "reviewer", lambda: "/api/v1/tasks?limit=50"),
        (f"reads: inbox (decided {busy_decided:,} open)", "busy", lambda: "/api/v1/tasks?limit=50"),
        ("reads: task list, waiting (decided many)", "busy",
         lambda: "/api/v1/documents?part=waiting&limit=50"),
        ("reads: document list (a reviewer)", "reviewer", lambda: "/api/v1/documents?limit=50"),
        ("reads: document list (auditor, newest)", "auditor",
         lambda: "/api/v1/documents?sort=newest&limit=50"),
        ("reads: document", "auditor", lambda: f"/api/v1/documents/{rng.randint(1, top)}"),
        ("reads: history", "auditor", lambda: f"/api/v1/documents/{rng.randint(1, top)}/history"),
        ("reads: audit search (by actor)", "auditor",
         lambda: f"/api/v1/audit?actor={setup['reviewer_name']}&limit=50"),
        ("reads: audit search (by flow)", "auditor",
         lambda: "/api/v1/audit?flow=shipment&limit=50"),
    ]  # fmt: skip
    made = 0
    for label, who, path in cases:
        samples, statuses = [], set()
        for _ in range(READS):
            status, ms = get(port, path(), setup[who])
            samples.append(ms)
            statuses.add(status)
        made += READS
        p95 = percentile(samples, 0.95)
        report.figure(label, f"p50 {statistics.median(samples):.1f} / p95 {p95:.1f} ms",
                      f"p95 {p95 / READ_TARGET_MS:.2f} of 25 ms",
                      f"HTTP {sorted(statuses)}")  # fmt: skip
        if statuses - {200}:
            report.problem(f"{label}: answers {sorted(statuses)}")
    return made


def top_up(port: int, setup: dict[str, Any], requests: int) -> None:
    """More requests (a mix of reads) until the workers have served MEMORY_REQUESTS."""
    if requests <= 0:
        return
    rng = random.Random(16)
    # Documents and histories (the inbox was measured already; it is the slow one).
    paths = ["/api/v1/documents/{}", "/api/v1/documents/{}/history"]

    def one(_: int) -> int:
        path = rng.choice(paths).format(rng.randint(1, setup["documents"]))
        return get(port, path, setup["auditor"])[0]

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(requests)))


def scale_out(
    target: Target,
    session: Session,
    first: Gunicorn,
    one_rps: float,
    one_cpu: CpuCost,
    env: dict[str, str],
    log: Path,
    report: Report,
) -> None:
    """A second instance beside the first, on one PostgreSQL; the same clients spread over both."""
    second = Gunicorn("wsgi:app", WORKERS, app_env(target), log)
    try:
        hosts = f"{first.url},{second.url}"
        locust_warmup("ReviewCycle", first.url, target.tmp, {**env, "BENCH_HOSTS": hosts})
        before = max_document_id(session)
        cpu = Cpu(session, [first, second], "fuhe_bench_app")
        load = locust("ReviewCycle", first.url, target.tmp, {**env, "BENCH_HOSTS": hosts})
        cost = cpu.per_request(load.requests)
        approve = load.named.get("approve", {"rps": 0.0, "count": 0, "failures": 0})
        ratio = approve["rps"] / one_rps if one_rps else 0.0
        report.figure("scale-out: two instances", f"{approve['rps']:.1f} approvals/s",
                      f"{ratio:.2f} of one instance", f"{load.failures} failed")  # fmt: skip
        report.figure("scale-out: CPU ms per request (two)", cost.describe(),
                      note=f"one instance: {one_cpu.describe()}")  # fmt: skip
        check_consistency(session, before, load.acknowledged, report)
        project(cost, load.requests / max(load.named.get("approve", {}).get("count", 1), 1), report)
    finally:
        second.stop()


def project(cost: CpuCost, requests_per_approve: float, report: Report) -> None:
    """Throughput for N app hosts of this machine's size against one PostgreSQL of the same size,
    from the measured CPU per request: the app tier scales with N, the database does not."""
    cores = os.cpu_count() or 1
    if not cost.app_ms or not cost.db_ms:
        return
    db_limit = cores * 1000 / cost.db_ms
    for n in (1, 2, 4, 8, 16):
        app_limit = n * cores * 1000 / cost.app_ms
        rps = min(app_limit, db_limit)
        bound = "app" if app_limit < db_limit else "PostgreSQL"
        report.figure(f"projection: {n} app host(s) of {cores} cores",
                      f"{rps / requests_per_approve:.0f} approvals/s",
                      note=f"{rps:.0f} req/s, bound by {bound} CPU")  # fmt: skip


def pg_target(url: str, tmp: Path) -> Target:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))
    engine.dispose()
    sep = "&" if "?" in url else "?"
    full = f"{url}{sep}application_name=fuhe_bench_app&options=-csearch_path%3D{SCHEMA}"
    return Target("postgresql", full, SCHEMA, tmp)


def main() -> int:
    # One audit key for the generator (which seals the events it writes) and the servers it
    # starts (which inherit the environment), so `audit verify` holds on the generated data.
    os.environ.setdefault("AUDIT_KEY", secrets.token_hex(32))
    audit.configure(audit.Keyring.from_settings(os.environ["AUDIT_KEY"]))
    report = Report()
    print(f"复核 bench ({'small' if SMALL else 'full'}), {load_average()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="fuhe-bench-") as name:
        tmp = Path(name)
        targets = []
        if os.environ.get("BENCH_SKIP_SQLITE") != "1":
            (tmp / "sqlite").mkdir()
            sqlite_url = f"sqlite:///{tmp / 'sqlite' / 'bench.sqlite3'}"
            targets.append(Target("sqlite", sqlite_url, None, tmp / "sqlite"))
        if os.environ.get("BENCH_DATABASE_URL"):
            (tmp / "pg").mkdir()
            targets.append(pg_target(os.environ["BENCH_DATABASE_URL"], tmp / "pg"))
        try:
            for target in targets:
                run(target, report)
                if os.environ.get("BENCH_KEEP_LOG"):
                    print((target.tmp / "gunicorn.log").read_text()[-4000:])
        finally:
            if os.environ.get("BENCH_DATABASE_URL") and os.environ.get("BENCH_KEEP_DATA") != "1":
                engine = make_engine(os.environ["BENCH_DATABASE_URL"])
                with engine.begin() as conn:
                    conn.execute(text(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE'))
                engine.dispose()
    if report.problems:
        print(f"{len(report.problems)} problem(s):", *report.problems, sep="\n  ")
        return 1
    print(f"done, {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
