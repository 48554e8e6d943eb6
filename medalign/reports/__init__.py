"""Human-readable reports written beside a run: report.html (html.py) and the paired
score tables (paired.py); every number in them is printed by eval/cells.py."""
