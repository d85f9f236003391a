"""Benchmarks: each script prints a table and writes JSON; every figure is a ratio against a
baseline measured in the same run (interleaved repeats, medians). See bench/README.md."""
