"""``gitstate demo``: a scratch repository built from the example projects, and a pass over it.

It creates a new git repository (never touching the user's own repositories or
``$HOME``), adds the example projects in ``projects/`` through the store, task
by task, then runs a short time-boxed pass, as ``gitstate run`` does: several
agents, whose command is a scripted stand-in for a coding agent, and the
coordinator, which merges their work behind each project's check. The script
makes the interesting things happen: one task fails once and is retried, two
tasks change the same lines so the second conflicts, is re-queued, and merges
the state branch to resolve it, and dependent tasks wait for their
dependencies. The repository is left behind to explore with gitstate and git.
"""

from __future__ import annotations

import shlex
import sys
import tempfile
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path

from gitstate import audit, projects, statefile, tasks
from gitstate.errors import InvalidInput
from gitstate.git import Repository
from gitstate.model import Project, Status
from gitstate.render import status_table, table
from gitstate.runner import Options, Summary, Supervisor
from gitstate.runner import table as summary_table
from gitstate.store import Store
from gitstate.timefmt import Clock, format_timestamp

_SETTINGS = ("description", "max_retries", "timeout", "lease", "requires", "meta")
_FIELDS = (
    "description",
    "priority",
    "depends_on",
    "requires",
    "max_retries",
    "timeout",
    "not_before",
    "meta",
)


def example_files() -> dict[str, str]:
    """The example projects: bundled in the wheel, or read from the source tree."""
    bundled = resources.files("gitstate") / "examples"
    source = Path(__file__).resolve().parent.parent / "projects"
    found: dict[str, str] = {}
    for folder in (bundled, source):
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            state = entry / "STATE.yaml"
            if state.is_file():
                found[entry.name] = state.read_text()
        if found:
            return dict(sorted(found.items()))
    raise InvalidInput("the example projects are missing from this installation; reinstall gitstate")


def _in_dependency_order(project: Project) -> Iterator[str]:
    done: set[str] = set()
    pending = list(project.tasks)
    while pending:
        for task_id in pending:
            if set(project.tasks[task_id].depends_on) <= done:
                done.add(task_id)
                pending.remove(task_id)
                yield task_id
                break


AGENTS = 3
DEMO_COMMAND = "python tools/agent.py"
TIME_BOX = 45.0  # seconds; the pass usually ends well before, when the work is done

ROUTES_FILE = """\"\"\"The shop's URL routes; tasks add theirs under the marker.\"\"\"

ROUTES = [
    # routes are added here
]
"""

# The stand-in for a coding agent, committed into the scratch repository as
# tools/agent.py. It runs in the task's worktree with the GITSTATE_* variables.
AGENT = """\"\"\"A stand-in for a coding agent (claude -p, codex exec, aider --message).

It writes its task's files and exits 0 (gitstate commits the work), or fails.
Scripted for the demo: t-cart fails its first attempt, and a task whose last
attempt lost a conflict merges the state branch into its worktree and
resolves the conflict, as a real agent would be asked to.
With --check it is the projects' check instead: no conflict markers, and
every Python file compiles.
\"\"\"

import os
import subprocess
import sys
from pathlib import Path

FILES = {
    "t-schema": {"shop/schema.sql": "CREATE TABLE products (id INTEGER PRIMARY KEY, cents INTEGER);\\n"},
    "t-catalog": {"shop/catalog.py": "def list_products():\\n    return []\\n"},
    "t-cart": {"shop/cart.py": "CART_TTL_HOURS = 24\\n"},
    "t-checkout": {"shop/checkout.py": "def checkout(cart):\\n    return {'order': cart}\\n"},
    "t-load-test": {"bench/load.txt": "catalogue: 1200 requests/s at p99 40 ms\\n"},
    "t-outline": {"docs/guide.md": "# User guide\\n\\n1. Browsing\\n2. The cart\\n3. Checkout\\n"},
    "t-install": {"docs/install.md": "# Installing\\n\\n    pip install shop\\n"},
}
ROUTES = {
    "t-catalog": '    ("/products", "catalog.list_products"),\\n',
    "t-cart": '    ("/cart", "cart.show"),\\n',
    "t-checkout": '    ("/checkout", "checkout.checkout"),\\n',
}
MARK = "    # routes are added here\\n"


def git(*args):
    return subprocess.run(["git", *args], capture_output=True, text=True, check=False)


def check():
    markers = git("grep", "-n", "-e", "^<<<<<<< ", "-e", "^>>>>>>> ")
    if markers.stdout:
        sys.exit("conflict markers:\\n" + markers.stdout)
    for path in Path("shop").glob("*.py"):
        compile(path.read_text(), str(path), "exec")
    print("check passed")


def work():
    task, attempt = os.environ["GITSTATE_TASK"], int(os.environ["GITSTATE_ATTEMPT"])
    base, last_error = os.environ["GITSTATE_BASE_BRANCH"], os.environ.get("GITSTATE_LAST_ERROR", "")
    if task == "t-cart" and attempt == 1:
        sys.exit("FAILED tests/test_cart.py::test_expiry - the cart expired an hour early")
    merging = last_error.startswith("conflict")
    if merging:
        print(f"the last attempt did not land ({last_error}); merging {base} to resolve it")
        git("merge", "--no-edit", "-q", base)
    for name, text in FILES.get(task, {}).items():
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        Path(name).write_text(text)
    if task in ROUTES:
        routes = Path("shop/routes.py")
        text = routes.read_text()
        if "<<<<<<< " in text:  # resolve: the state branch's routes, plus ours
            text = git("show", f"{base}:shop/routes.py").stdout
        if ROUTES[task] not in text:
            text = text.replace(MARK, MARK + ROUTES[task])
        routes.write_text(text)
    if merging:
        git("add", "-A")
        git("commit", "-q", "--no-edit")
    print(f"{task}: done")


check() if sys.argv[1:] == ["--check"] else work()
"""


def run(target: Path | None, say: Callable[[str], None], *, agents: int = AGENTS) -> Path:
    """Build the demo repository at ``target`` (default: a new temporary folder), run a
    pass over it, and tell ``say`` what happened; returns the repository's path."""
    path = target or Path(tempfile.mkdtemp(prefix="gitstate-demo-"))
    if path.exists() and any(path.iterdir()):
        raise InvalidInput(f"{path} is not empty; give the demo a new or empty folder")
    say(f"scratch repository: {path}")
    path.mkdir(parents=True, exist_ok=True)
    with Repository.create(path, "main") as repo:
        _seed(repo, path)
        store = Store(repo, agent="demo")
        _add_examples(store, say)
    say(f"\n$ gitstate run --agents {agents} --time-box {int(TIME_BOX)}s")
    summary = Supervisor(
        path, "main", Options(agents=agents, time_box=TIME_BOX, prefix="agent"), _progress(say)
    ).run(until_done=True)
    say(summary_table(summary))
    with Repository.discover(path) as repo:
        _report(Store(repo), path, summary, say)
    return path


# The scratch repository's own settings win over the user's global git config,
# which might sign commits, refuse merges that are not fast-forwards, or run hooks.
SCRATCH_CONFIG = {
    "user.name": "gitstate demo",
    "user.email": "demo@gitstate.invalid",
    "commit.gpgsign": "false",
    "merge.ff": "true",
    "core.autocrlf": "false",
}


def _seed(repo: Repository, path: Path) -> None:
    for key, value in SCRATCH_CONFIG.items():
        repo.set_config(key, value)
    repo.set_config("core.hooksPath", str(repo.common_dir / "no-hooks"))  # none: not a template's
    (path / "README.md").write_text("A scratch repository made by `gitstate demo`.\n")
    (path / "shop").mkdir()
    (path / "shop" / "routes.py").write_text(ROUTES_FILE)
    (path / "tools").mkdir()
    (path / "tools" / "agent.py").write_text(AGENT)
    repo.git("add", "README.md", "shop", "tools", worktree=repo.worktree)
    repo.git("commit", "-q", "-m", "Start the demo shop", worktree=repo.worktree)
    projects.init(repo, "main", Clock())


def _add_examples(store: Store, say: Callable[[str], None]) -> None:
    python = shlex.quote(sys.executable)
    for name, text in example_files().items():
        example = statefile.parse(text, statefile.state_path(name)).project
        fields = {k: getattr(example.settings, k) for k in _SETTINGS if getattr(example.settings, k)}
        fields["command"] = f"{python} tools/agent.py"  # instead of the example's real coding agent
        fields["check"] = f"{python} tools/agent.py --check"
        fields["requires"] = ()
        projects.create(store, name, fields)
        say(f"$ gitstate project add {name} --command {DEMO_COMMAND!r} --check '{DEMO_COMMAND} --check'")
        for task_id in _in_dependency_order(example):
            task = example.tasks[task_id]
            values = {
                k: getattr(task, k)
                for k in _FIELDS
                if k not in ("requires", "not_before", "command")
                and getattr(task, k) not in (None, "", (), {})
            }
            tasks.add(store, name, task.title, values, task_id)
            say(f"$ gitstate task add {name} {task.title!r} --id {task_id}")
            if task.status == Status.CANCELLED:
                tasks.cancel(store, name, task_id, task.error)
                say(f"$ gitstate task cancel {name} {task_id}")


def _progress(say: Callable[[str], None]) -> Callable[[str, dict[str, object]], None]:
    def log(kind: str, fields: dict[str, object]) -> None:
        message = fields.get("message")
        if message:
            say(f"  {message}")

    return log


def _report(store: Store, path: Path, summary: Summary, say: Callable[[str], None]) -> None:
    now = store.clock.now()
    say("\n$ gitstate status")
    say(status_table(store.read_all(), now))
    say("\n$ gitstate log")
    rows = []
    for item in reversed(list(audit.events(store))):
        if item.task is None:
            continue
        moved = f"{item.old} -> {item.new}" if item.new else ""
        rows.append(
            [
                format_timestamp(item.time)[11:19],
                f"{item.project}/{item.task}",
                item.event,
                item.agent or "-",
                moved,
            ]
        )
    say(table(("TIME", "TASK", "EVENT", "AGENT", "STATUS"), rows))
    say("\n$ git log --graph --oneline")
    graph = store.repo.git("log", "--graph", "--oneline", "--no-decorate", "-40", "main").stdout.decode()
    say(graph.rstrip())
    say(
        f"\nExplore it (the pass took {summary.seconds:.0f}s):\n"
        f"  cd {shlex.quote(str(path))}\n"
        "  gitstate status\n"
        "  gitstate task history webapp t-cart     # failed once, conflicted, then merged\n"
        "  gitstate log --event reject             # what the coordinator turned away, and why\n"
        "  gitstate rollback webapp t-load-test    # take a task's work back out, as a new commit\n"
        "  git log --first-parent --format='%h %s%n%(trailers)' -3\n"
        "  git show main:projects/webapp/STATE.yaml"
    )
