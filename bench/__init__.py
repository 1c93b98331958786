"""Benchmarks of the dense pass: engines, the per-window baseline, the machine's limit, growth
with input size, and the viewer end to end. Run with `python -m bench` (see bench/README.md).
"""
