"""`python -m edgenas` runs the command line (torchrun launches it this way)."""

from .cli import main

main()
