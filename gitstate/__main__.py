"""``python -m gitstate``: the same entry point as the ``gitstate`` script."""

from gitstate.cli import main

main()
