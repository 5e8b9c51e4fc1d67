"""The ``gitstate`` command line: click commands that parse, call the core, and print.

``base`` holds the root group, the shared options and the one place errors
become messages; the commands live by audience: ``state`` (projects and
tasks), ``agents`` (claim to done), ``ops`` (the coordinator, runs, services)
and ``history`` (audit, rollback, import and export). A command's module is
loaded when the command runs (``base.COMMAND_MODULES``).
"""

from gitstate.cli.base import cli, main

__all__ = ["cli", "main"]
