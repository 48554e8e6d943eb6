"""Human-readable reports written beside a run: report.html (html.py), and the one number
format every table uses (cells.py)."""
