"""Metrics: one module per metric, each holding that metric's whole definition (see metrics/base.py)."""
