"""`python -m medalign ...`: see medalign/cli.py."""

from medalign.cli import main

main()
