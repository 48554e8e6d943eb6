"""Human-readable reports written beside a run: report.html (see html.py)."""
