"""Evaluation: log-likelihood choice scoring, generation + parsing, SQuAD v2, reports."""
