"""Evaluation: log-likelihood choice scoring, generation + parsing, SQuAD v2, refusals,
reports, and the one number format every table uses (cells.py)."""
