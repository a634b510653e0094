"""Helpers every layer may use; this package imports nothing else from cnnbench but ``errors``."""
