"""Adversarial tests: each reproduces an attack that got through once, against the real
process, the real DuckDB file or the real loopback venue, and asserts the safe outcome."""
