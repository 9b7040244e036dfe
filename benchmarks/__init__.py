"""Benchmarks of finsent: `finsent bench` and `finsent bench-peak` (the
parallelism claim), and the serving, monitoring and Transform benchmarks,
run as `python -m finsent.benchmarks.NAME` (docs/benchmarks.md)."""
