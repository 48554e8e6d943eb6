"""Datasets: one loader module per format, normalized records, instruction formatting."""
