"""Generators: one module per adapter, each implementing generators/base.py's batched protocol."""
