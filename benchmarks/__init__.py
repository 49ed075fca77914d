"""Benchmarks of the product, each run from the repository root as `python -m benchmarks.NAME`."""
