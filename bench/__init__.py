"""Benchmarks: each bench/bench_*.py prints its figures; `make bench` runs them all."""
