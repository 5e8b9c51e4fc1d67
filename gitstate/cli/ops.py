"""Commands that run the machinery: merge, run, daemon, service, doctor, demo, and what git calls."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from gitstate.cli.base import F, cli, complete_projects, echo_json, get_app, json_option

# -- the coordinator ----------------------------------------------------------------------------


@cli.command("merge")
@click.argument("project_name", metavar="[PROJECT]", required=False, shell_complete=complete_projects)
@click.option(
    "--strategy",
    type=click.Choice(["merge", "squash"]),
    default="merge",
    show_default=True,
    help="A merge commit per task (one revertable unit each), or one squashed commit.",
)
@json_option
def merge_cmd(project_name: str | None, strategy: str, as_json: bool) -> None:
    """Land every completed task branch on the state branch, checked.

    Branches are merged without touching any checkout; conflicts and branches
    that change more of STATE.yaml than their own task are turned away first;
    the project's check runs once per batch on exactly what would land
    (failing batches are split until the culprit is alone). A task that cannot
    land goes back to pending with the reason in its error.
    """
    from gitstate.coordinator import Coordinator

    store = get_app().store
    report = Coordinator(store, strategy=strategy, say=(lambda _: None) if as_json else click.echo).run(
        [project_name] if project_name else None
    )
    if as_json:
        landings = [
            {
                "project": item.project,
                "id": item.task,
                "outcome": item.outcome,
                "detail": item.detail,
                "commit": item.commit,
            }
            for item in report.landings
        ]
        echo_json({"landings": landings, "checks": report.checks})
    elif not report.landings:
        click.echo("no completed task is waiting to be merged")
    else:
        merged = len(report.merged())
        click.echo(f"{merged} merged, {len(report.landings) - merged} not; {report.checks} check runs")


def _supervisor_options(f: F) -> F:
    options = [
        click.option(
            "--agents",
            type=click.IntRange(1, 64),
            default=2,
            show_default=True,
            envvar="GITSTATE_AGENTS",
            help="Agents to run side by side.",
        ),
        click.option(
            "--project",
            "projects",
            multiple=True,
            metavar="P",
            shell_complete=complete_projects,
            envvar="GITSTATE_PROJECTS",
            help="Only these projects (repeatable; GITSTATE_PROJECTS is space-separated).",
        ),
        click.option(
            "--requires",
            "capabilities",
            multiple=True,
            metavar="CAP",
            envvar="GITSTATE_REQUIRES",
            help="Capabilities the agents have (repeatable).",
        ),
        click.option(
            "--max-failures",
            type=click.IntRange(min=1),
            default=5,
            show_default=True,
            envvar="GITSTATE_MAX_FAILURES",
            help="Consecutive failed tasks that stop claiming (the circuit breaker).",
        ),
        click.option(
            "--log-format",
            type=click.Choice(["text", "json"]),
            default="text",
            show_default=True,
            envvar="GITSTATE_LOG_FORMAT",
            help="Progress lines on stderr: text, or one JSON object per line.",
        ),
        click.option(
            "--metrics-port",
            type=click.IntRange(1, 65535),
            envvar="GITSTATE_METRICS_PORT",
            help="Serve Prometheus metrics on 127.0.0.1:PORT.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _supervisor(options: Any, log_format: str, metrics_port: int | None) -> Any:
    from gitstate.runner import Supervisor, logger

    app = get_app()
    top = app.repo.toplevel or app.repo.common_dir
    supervisor = Supervisor(top, app.branch, options, logger(log_format))
    if metrics_port is not None:
        from gitstate.metrics import Metrics

        supervisor.metrics = Metrics(metrics_port)
    return supervisor


@cli.command()
@_supervisor_options
@click.option(
    "--time-box",
    metavar="DURATION",
    envvar="GITSTATE_TIME_BOX",
    help="Finish within this long (10m, 1h); default: until the work is done.",
)
@click.option(
    "--push",
    "push_remote",
    metavar="REMOTE",
    envvar="GITSTATE_PUSH",
    help="Push the state branch and task branches to REMOTE at the end.",
)
@click.option(
    "--junit", type=click.Path(dir_okay=False), envvar="GITSTATE_JUNIT", help="Write a JUnit XML report here."
)
@json_option
def run(
    agents: int,
    projects: tuple[str, ...],
    capabilities: tuple[str, ...],
    max_failures: int,
    log_format: str,
    metrics_port: int | None,
    time_box: str | None,
    push_remote: str | None,
    junit: str | None,
    as_json: bool,
) -> None:
    """One pass, as a CI pipeline runs it: agents and the coordinator, time-boxed.

    Runs AGENTS agents and merges their work until nothing is left to do or
    the time box ends. It stops claiming in time to finish; at the end, running
    tasks are stopped, their work committed to their branches and released (the
    next pass resumes from there); then a final merge, the push, and a summary
    (also as JUnit XML, and to $GITHUB_STEP_SUMMARY when that is set).
    Exit codes: 0 done, 5 a task failed for good, 6 the circuit breaker stopped
    claiming, 1 gitstate itself failed. Every option can also come from its
    GITSTATE_* variable (GITSTATE_AGENTS, GITSTATE_TIME_BOX, ...).

    \b
    Example:
      gitstate run --agents 4 --time-box 50m --push origin --junit report.xml
    """
    from pathlib import Path

    from gitstate.names import check_project_name
    from gitstate.runner import Options, markdown, table
    from gitstate.runner import as_json as summary_json
    from gitstate.runner import junit as junit_xml
    from gitstate.timefmt import parse_duration

    names = tuple(check_project_name(p) for item in projects for p in item.split())
    box = parse_duration(time_box, "--time-box") if time_box else None
    caps = tuple(c for item in capabilities for c in item.split()) or None
    options = Options(
        agents=agents,
        time_box=box,
        projects=names,
        push=push_remote,
        capabilities=caps,
        max_failures=max_failures,
    )
    summary = _supervisor(options, log_format, metrics_port).run(until_done=True)
    if junit:
        Path(junit).write_text(junit_xml(summary))
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as out:
            out.write(markdown(summary))
    click.echo(_dumps_json(summary_json(summary)) if as_json else table(summary))
    sys.exit(summary.exit_code)


def _dumps_json(payload: dict[str, Any]) -> str:
    from gitstate.render import dumps

    return dumps(payload)


@cli.command()
@_supervisor_options
@click.option(
    "--grace",
    metavar="DURATION",
    default="30s",
    show_default=True,
    envvar="GITSTATE_GRACE",
    help="On SIGTERM, how long running tasks may finish.",
)
def daemon(
    agents: int,
    projects: tuple[str, ...],
    capabilities: tuple[str, ...],
    max_failures: int,
    log_format: str,
    metrics_port: int | None,
    grace: str,
) -> None:
    """Run agents and the coordinator until stopped (a service).

    SIGTERM or SIGINT stop it gracefully: no new claims, running tasks get the
    grace period to finish, the rest are released with their work on their
    branches, and it exits 0. After a crash or a reboot it picks up within
    seconds: tasks its own agents held are given back at start.
    """
    import signal

    from gitstate.names import check_project_name
    from gitstate.runner import Options
    from gitstate.timefmt import parse_duration

    names = tuple(check_project_name(p) for item in projects for p in item.split())
    caps = tuple(c for item in capabilities for c in item.split()) or None
    options = Options(
        agents=agents,
        projects=names,
        capabilities=caps,
        max_failures=max_failures,
        grace=float(parse_duration(grace, "--grace")),
    )
    supervisor = _supervisor(options, log_format, metrics_port)
    signal.signal(signal.SIGTERM, lambda *_: supervisor.request_stop())
    signal.signal(signal.SIGINT, lambda *_: supervisor.request_stop())
    supervisor.log(
        "start", {"message": f"daemon started with {agents} agents ({', '.join(supervisor.names)})"}
    )
    summary = supervisor.run(until_done=False, final_merge=False)
    supervisor.log(
        "stop", {"message": f"daemon stopped: {summary.merged} merged, {summary.released} released"}
    )


@cli.command()
@click.argument("kind", type=click.Choice(["systemd", "launchd"]))
@click.option(
    "--agents", type=click.IntRange(1, 64), default=2, show_default=True, help="Agents the daemon runs."
)
@click.option("--project", "projects", multiple=True, metavar="P", help="Only these projects (repeatable).")
def service(kind: str, agents: int, projects: tuple[str, ...]) -> None:
    """Print a systemd unit or a launchd plist that runs `gitstate daemon` for this repository.

    \b
    Example:
      gitstate service systemd > ~/.config/systemd/user/gitstate.service
      systemctl --user enable --now gitstate
    """
    from gitstate.names import check_project_name
    from gitstate.service import launchd, systemd

    app = get_app()
    top = app.repo.toplevel or app.repo.common_dir
    for name in projects:
        check_project_name(name)
    click.echo((systemd if kind == "systemd" else launchd)(top, agents, projects), nl=False)


@cli.command("merge-driver", hidden=True)
@click.argument("base", type=click.Path(dir_okay=False))
@click.argument("ours", type=click.Path(dir_okay=False))
@click.argument("theirs", type=click.Path(dir_okay=False))
@click.argument("path")
def merge_driver(base: str, ours: str, theirs: str, path: str) -> None:
    """What git runs to merge a STATE.yaml (git config merge.gitstate.driver)."""
    from pathlib import Path

    from gitstate.driver import merge_files

    code, messages = merge_files(Path(base), Path(ours), Path(theirs), path)
    for line in messages:
        click.echo(line, err=True)
    sys.exit(code)


@cli.command()
@json_option
def doctor(as_json: bool) -> None:
    """Check this clone: merge driver, STATE.yaml files, stale locks, worktrees (exit 1: problems)."""
    from gitstate.doctor import examine

    problems, notes = examine(get_app().store)
    if as_json:
        echo_json({"problems": problems, "notes": notes})
    else:
        for line in notes:
            click.echo(f"ok: {line}")
        for line in problems:
            click.echo(f"problem: {line}")
    if problems:
        sys.exit(1)


# -- hooks ------------------------------------------------------------------------------------


@cli.command(hidden=True)
@click.argument("name", type=click.Choice(["pre-commit", "pre-merge-commit"]))
@click.argument("args", nargs=-1)
def hook(name: str, args: tuple[str, ...]) -> None:
    """What the scripts in hooks/ run: check the staged STATE.yaml files of a commit or a merge."""
    from gitstate.hooks import staged_errors

    problems = staged_errors(get_app().repo, os.environ)
    for line in problems:
        click.echo(f"gitstate: {line}", err=True)
    if problems:
        click.echo("gitstate: commit refused; fix the lines above (or commit with --no-verify)", err=True)
        sys.exit(1)


@cli.command()
@click.option(
    "--dir", "target", metavar="PATH", help="Build the repository here (default: a new temporary folder)."
)
def demo(target: str | None) -> None:
    """Build a scratch repository from the example projects and run a short pass over it.

    Three scripted agents work the example tasks (one fails once and is
    retried, one conflicts and is re-queued, some wait for their
    dependencies) while the coordinator merges behind each project's check.
    Then it prints the status, the audit log and the git graph. Your own
    repositories and $HOME are not touched; the scratch repository is left
    behind for you to explore.
    """
    from pathlib import Path

    from gitstate import demo as example

    example.run(Path(target).resolve() if target else None, click.echo)
