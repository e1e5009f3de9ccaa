"""`python -m admin` runs the operator CLI (same as the `conectades` script)."""

from admin.cli import main

main()
