"""Benchmarks: `make bench` or `python -m bench [name ...]`; ratios to a bare endpoint of the same run."""
