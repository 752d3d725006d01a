"""`make bench` must keep working: its small mode runs here, on SQLite and on PostgreSQL.

Nothing is timed: the test asserts the benchmark completes (its consistency checks and `audit
verify` on the generated data included) and prints every figure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from tests.conftest import PG_URL, ROOT, backends

FIGURES = [
    "data: generated",
    "data: audit verify",
    "ceiling: one transactional write",
    "ceiling: CPU ms per request",
    "review: approvals/s",
    "review: approve latency",
    "review: CPU ms per request",
    "consistency: after the run",
    "approve only: approvals/s",
    "approve only: latency",
    "approve only: CPU ms per approval",
    "consistency: after approve only",
    "ceiling again: one transactional write",
    "approve only: to the ceilings around it",
    "machine: speed probe",
    "reads: inbox (a reviewer)",
    "reads: inbox (decided",
    "reads: document",
    "reads: history",
    "reads: audit search",
    "memory: RSS per worker after warm-up",
    "memory: RSS after",
]
SCALE_OUT = ["scale-out: two instances", "scale-out: CPU ms per request", "projection: 4 app host"]


@pytest.mark.slow
@pytest.mark.parametrize("backend", backends())
def test_small_benchmark_runs_and_prints_every_figure(backend: str) -> None:
    env = {
        **os.environ,
        "BENCH_SMALL": "1",
        "BENCH_DURATION": "3",
        "BENCH_CLIENTS": "4",
        "BENCH_READS": "5",
        "BENCH_MEMORY_REQUESTS": "60",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("BENCH_DATABASE_URL", None)
    if backend == "postgresql":
        env.update(
            BENCH_DATABASE_URL=PG_URL or "",
            BENCH_SKIP_SQLITE="1",
            BENCH_SCHEMA=f"fuhe_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}",
        )
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    expected = FIGURES + (SCALE_OUT if backend == "postgresql" else [])
    missing = [label for label in expected if label not in done.stdout]
    assert not missing, done.stdout
    assert "PROBLEM" not in done.stdout
    assert "0 double advances, 0 lost" in done.stdout
