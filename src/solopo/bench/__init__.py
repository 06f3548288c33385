"""Benchmarks that are not model evaluations (efficiency of the two-stage SoLo forward)."""
