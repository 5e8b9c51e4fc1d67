"""The rules the code is built on: one gateway to git, a pure core, a documented CLI."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from gitstate.cli import cli
from gitstate.cli.base import COMMAND_MODULES

PACKAGE = Path(__file__).resolve().parents[1] / "gitstate"
README = (PACKAGE.parent / "README.md").read_text()


def imports(module: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


# Only these modules start processes: git.py runs git, executor.py runs task commands.
RUNS_PROCESSES = {"git.py", "executor.py"}


def test_only_the_gateway_imports_gitpython_or_runs_git() -> None:
    for module in PACKAGE.rglob("*.py"):
        names = imports(module)
        uses_gitpython = any(n == "git" or n.startswith(("git.", "gitdb")) for n in names)
        assert not uses_gitpython or module.name == "git.py", module.name
        if module.name not in RUNS_PROCESSES:
            assert "subprocess" not in names, f"{module.name} runs processes; git belongs in git.py"
    assert '"git"' not in (PACKAGE / "executor.py").read_text(), "executor.py must not run git"


@pytest.mark.parametrize("pure", ["model.py", "names.py", "timefmt.py"])
def test_the_core_is_pure(pure: str) -> None:
    names = imports(PACKAGE / pure)
    for forbidden in ("git", "gitstate.git", "ruamel", "click", "subprocess", "gitstate.store", "filelock"):
        assert not any(n == forbidden or n.startswith(forbidden + ".") for n in names), (pure, forbidden)


def test_every_module_says_what_it_holds() -> None:
    for module in PACKAGE.rglob("*.py"):
        assert ast.get_docstring(ast.parse(module.read_text())), f"{module.name} has no docstring"


def commands(group: click.Group = cli, prefix: str = "") -> list[tuple[str, click.Command]]:
    found = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, f"gitstate {prefix}{name} is listed but cannot be loaded"
        full = f"{prefix}{name}"
        found.append((full, command))
        if isinstance(command, click.Group):
            found.extend(commands(command, full + " "))
    return found


@pytest.mark.parametrize(("name", "command"), commands())
def test_every_command_has_help_and_is_in_the_readme(name: str, command: click.Command) -> None:
    assert command.help, f"gitstate {name} has no help text"
    assert re.search(rf"gitstate {re.escape(name)}\b", README), f"README does not mention `gitstate {name}`"


def test_modules_import_cleanly_in_a_fresh_interpreter() -> None:
    for module in sorted(PACKAGE.rglob("*.py")):
        if module.name == "__main__.py":
            continue
        parts = module.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        proc = subprocess.run(
            [sys.executable, "-c", f"import {name}"], capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, proc.stderr


def test_each_command_loads_from_the_module_the_root_names() -> None:
    for module in ("agents", "history", "ops", "state"):
        importlib.import_module(f"gitstate.cli.{module}")
    assert sorted(cli.commands) == sorted(COMMAND_MODULES)  # nothing defined but unlisted, or listed but gone
    for name, command in cli.commands.items():
        assert command.callback is not None
        defined_in = command.callback.__module__.rpartition(".")[2]
        assert defined_in == COMMAND_MODULES[name][0], f"gitstate {name} is defined in {defined_in}"


def test_a_command_loads_only_its_own_module() -> None:
    code = (
        "import sys; from gitstate.cli import cli; "
        "from click.testing import CliRunner; CliRunner().invoke(cli, ['next', '--help']); "
        "print(sorted(m for m in sys.modules if m.startswith('gitstate.cli.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out == "['gitstate.cli.base', 'gitstate.cli.state']\n"
