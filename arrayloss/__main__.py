"""``python -m arrayloss`` runs the command line."""

from arrayloss.cli import main

main()
