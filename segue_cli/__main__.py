"""``python -m segue_cli`` runs the CLI (same as the ``segue`` script)."""

from .cli.app import main

main()
