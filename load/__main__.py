"""`python -m load ...`: the load-test CLI (load/cli.py)."""

from load.cli import main

main()
