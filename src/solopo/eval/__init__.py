"""Benchmarks (one module each) and their shared metrics, truncation and I/O."""
BENCHMARKS = ("longbench_v1", "ruler", "longbench_v2", "niah_plus", "leaderboard")
