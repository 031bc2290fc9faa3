"""`python -m labelloop` runs the labelloop command."""

from .cli import main

main()
