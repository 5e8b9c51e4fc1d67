"""A pass whose task, setup and check commands print secrets: none may be written down anywhere.

The secrets reach the commands only through the environment (their text
would be refused if it held one). Commands print them on stdout and stderr,
and fail with them in the last lines (which become the task's error); the
check prints them too; the project copies a ``.env`` holding them into every
worktree; people pass them to ``done --result``, ``fail --error`` and
``release --reason``; lifecycle hooks (a command per event and a webhook)
receive every event. Then everything is searched:

* every object of the repository and of the remote it pushed to
  (``git cat-file --batch-all-objects --batch``), and ``git log -p --all``;
* every file under ``.git`` (logs, reflogs, the parse cache, hooks.log...),
  the remote's files, the worktrees (except the ``.env`` copies the project
  asked for), the JUnit report and the step summary;
* everything the CLI printed, the hook commands' payloads and the webhook's bodies.

None may hold a secret; the logs must show ``[REDACTED]`` (so the secrets
were really printed, and hidden).
"""

from __future__ import annotations

import contextlib
import http.server
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from tests.reliability.invariants import Expect, Tally
from tests.reliability.sandbox import RECORD_PID, Sandbox, sandbox
from tests.reliability.trials import LEASE, recover, settle

SECRETS = {
    "SECRET_AWS": "AKIAIOSFODNN7EXAMPLE",
    "SECRET_GITHUB": "ghp_" + "aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dF3hJ5",
    "SECRET_OPENAI": "sk-proj-" + "Zq8Xw7Vu6Ts5Rq4Po3Nm2Lk1Ji0Hg9Fe",
    "SECRET_PASSWORD": "hunter2-correct-horse-battery",
    "SECRET_SLACK": "xoxb-" + "123456789012-abcdefghijklmnop",
    "SECRET_KEY_BODY": "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZWQyNTUxOQ",
}
# Key names are put together at run time ("pass""word"): gitstate refuses command text that
# looks like it holds a secret, and `password=$VAR` looks like one to it.
PRINT = (
    'echo "aws key $SECRET_AWS"; echo "tok""en: $SECRET_GITHUB" >&2; echo "OPENAI_API_""KEY=$SECRET_OPENAI"; '
    'echo "pass""word=$SECRET_PASSWORD"; echo "slack $SECRET_SLACK" >&2; '
    'printf -- "-----BEGIN OPENSSH PRIVATE ""KEY-----\\n%s\\n-----END OPENSSH PRIVATE ""KEY-----\\n" "$SECRET_KEY_BODY"; '
)
COMMAND = (
    RECORD_PID + PRINT + 'mkdir -p work && echo "$GITSTATE_TASK" > work/$GITSTATE_TASK.txt; '
    'case "$GITSTATE_TITLE" in failing*) echo "giving up: pass""word=$SECRET_PASSWORD $SECRET_GITHUB" >&2; exit 3;; '
    "bad*) echo BAD >> work/$GITSTATE_TASK.txt;; esac"
)
CHECK = RECORD_PID + PRINT + "! grep -rqs BAD work"
SETUP = RECORD_PID + 'echo "setting up with $SECRET_OPENAI and api_""key: $SECRET_AWS"'
HOOK = 'cat > "$RELIABILITY_PAYLOADS/$GITSTATE_EVENT-$$.json"; echo "hook saw $SECRET_GITHUB"'


class _Hook(http.server.BaseHTTPRequestHandler):
    bodies: list[bytes] = []  # noqa: RUF012 (one server per trial, reset by serve())

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.bodies.append(self.rfile.read(length))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


@contextlib.contextmanager
def serve() -> Iterator[tuple[str, list[bytes]]]:
    """A webhook on 127.0.0.1: (its URL, the bodies it received)."""
    bodies: list[bytes] = []
    handler = type("Hook", (_Hook,), {"bodies": bodies})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", bodies
    finally:
        server.shutdown()
        server.server_close()


def secrets_pass(tally: Tally) -> dict[str, int]:
    """The pass, then the search; returns how much was searched."""
    with sandbox() as box, serve() as (url, bodies):
        payloads = box.root / "payloads"
        payloads.mkdir()
        box.env.update(SECRETS)
        box.env.update(
            RELIABILITY_PAYLOADS=str(payloads), NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1"
        )
        outputs: list[str] = []
        box.add_remote()
        (box.repo / ".env").write_text(
            "".join(f"{k}={v}\n" for k, v in SECRETS.items())
        )  # untracked, not ignored
        box.must(
            "project", "add", "api", "--command", COMMAND, "--check", CHECK, "--setup", SETUP,
            "--copy-file", ".env", "--lease", f"{LEASE}s", "--max-retries", "1",
            "--hook", f"complete={HOOK}", "--hook", f"fail={HOOK}", "--hook", f"merge={HOOK}", "--webhook", url,
        )  # fmt: skip
        expect = Expect(work=True)
        for n, title in enumerate(["good one", "good two", "failing three", "bad four", "good five"]):
            outputs.append(box.must("task", "add", "api", title, "--id", f"t-{n}").out)
            expect.add("api", f"t-{n}")
            if title.startswith("bad"):
                expect.bad.add(f"t-{n}")
        junit = box.root / "junit.xml"
        summary = box.root / "summary.md"
        result = box.gs(
            "run", "--agents", "2", "--push", "origin", "--junit", str(junit), "--log-format", "json",
            extra={"GITHUB_STEP_SUMMARY": str(summary)},
        )  # fmt: skip
        tally.check(result.code in (0, 5), f"the pass failed: {result.describe()}")
        outputs += [result.out, result.err]
        # People type secrets too: into results, errors and reasons.
        for n, (verb, option) in enumerate(
            [("done", "--result"), ("fail", "--error"), ("release", "--reason")]
        ):
            box.must("task", "add", "api", f"by hand {n}", "--id", f"h-{n}")
            expect.add("api", f"h-{n}")
            claimed = box.must("claim", "api", "--agent", f"person-{n}")
            task_id = claimed.out.split()[1].split("/")[1]
            said = box.gs(
                verb,
                "api",
                task_id,
                option,
                f"used password={SECRETS['SECRET_PASSWORD']} and {SECRETS['SECRET_GITHUB']}",
            )
            tally.check(said.code == 0, f"{verb}: {said.describe()}")
            outputs += [claimed.out, claimed.err, said.out, said.err]
        refused = box.gs("task", "cancel", "api", "h-1", "--reason", f"token={SECRETS['SECRET_GITHUB']}")
        tally.check(refused.code == 1 and "looks like it holds a secret" in refused.err, refused.describe())
        outputs += [refused.out, refused.err]
        settle(box, tally, expect)
        outputs.append(recover(box, tally, "run", "--agents", "1", "--push", "origin").out)
        _wait_for_hooks(box, payloads)
        searched = _search(tally, box, outputs, [junit, summary, *payloads.iterdir()], bodies)
        tally.check(bool(bodies), "the webhook heard nothing")
        tally.check(any(payloads.iterdir()), "no hook command ran")
        tally.trials += 1
        return searched


def _wait_for_hooks(box: Sandbox, payloads: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        box.wait_quiet(1.0)
        log = box.repo / ".git" / "gitstate" / "hooks.log"
        if any(payloads.iterdir()) and not box._running():
            return
        if log.exists() and "Traceback" in log.read_text():
            return
        time.sleep(0.1)


def _search(
    tally: Tally, box: Sandbox, outputs: list[str], files: list[Path], bodies: list[bytes]
) -> dict[str, int]:
    needles = [value.encode() for value in SECRETS.values()]
    counts = {"objects": 0, "files": 0, "outputs": len(outputs), "webhook bodies": len(bodies)}

    def clean(where: str, data: bytes) -> None:
        found = [n.decode() for n in needles if n in data]
        tally.check(not found, f"a secret reached {where}: {found}")

    for repo in (box.repo, box.remote):
        assert repo is not None
        objects = subprocess.run(
            ["git", "-C", str(repo), "cat-file", "--batch-all-objects", "--batch"],
            capture_output=True, env=box.env, check=True,
        ).stdout  # fmt: skip
        counts["objects"] += objects.count(b"\n") and len(
            subprocess.run(["git", "-C", str(repo), "cat-file", "--batch-all-objects", "--batch-check"],
                           capture_output=True, env=box.env, check=True).stdout.splitlines()
        )  # fmt: skip
        clean(f"an object in {repo.name}", objects)
        history = subprocess.run(
            ["git", "-C", str(repo), "log", "-p", "--all", "--format=fuller%n%B"],
            capture_output=True,
            env=box.env,
            check=True,
        ).stdout
        clean(f"git log -p --all of {repo.name}", history)
    roots = [box.repo / ".git", box.remote]
    for root in roots:
        assert root is not None
        for path in root.rglob("*"):
            if path.is_file() and not (path.name == ".env" and "worktrees" in path.parts):
                counts["files"] += 1
                clean(str(path.relative_to(box.root)), path.read_bytes())
    logs = b"".join(p.read_bytes() for p in (box.repo / ".git" / "gitstate" / "logs").rglob("*.log"))
    tally.check(b"[REDACTED]" in logs, "the logs show no [REDACTED]: were the secrets printed at all?")
    for path in files:
        counts["files"] += 1
        clean(path.name, path.read_bytes())
    for number, text in enumerate(outputs):
        clean(f"CLI output {number}", text.encode())
    for number, body in enumerate(bodies):
        clean(f"webhook body {number}", body)
        with contextlib.suppress(ValueError):
            tally.check(json.loads(body)["schema_version"] == 1, "a webhook body is not a gitstate payload")
    return counts
