"""`python -m edgenas` runs the command line (torchrun launches it this way)."""

from edgenas.cli.app import main

main()
