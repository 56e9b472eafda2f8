"""``python -m structbench``: the same CLI as the ``structbench`` script."""

from structbench.cli import main

main(prog_name="structbench")
