"""Benchmarks (`make bench`): measured, not asserted — see docs/performance.md."""
