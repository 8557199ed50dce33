"""``python -m cli`` runs the ``emorefine`` command."""

from cli.main import main

main(prog_name="emorefine")
