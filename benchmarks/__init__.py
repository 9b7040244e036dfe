"""Benchmarks of finsent's serving path (run as `python -m benchmarks.NAME`)."""
