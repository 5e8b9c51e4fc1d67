"""The STATE.yaml merge driver: what ``git merge`` runs for ``projects/*/STATE.yaml``.

``gitstate init`` commits ``.gitattributes`` with ``projects/*/STATE.yaml
merge=gitstate`` and sets, in the clone's git config, ``merge.gitstate.driver``
to ``<python> -m gitstate merge-driver %O %A %B %P``. Without that config git
silently falls back to a text merge and can leave conflict markers inside
YAML, which is why ``gitstate doctor`` reports a clone that lacks it.

The driver merges per task and per field (``merge3``), writes the result over
"ours" and exits 0. A true conflict exits 1 and leaves a valid YAML file: ours,
with comment lines at the top that list each conflicting field's two values;
it never writes conflict markers. It runs no git command and reads nothing but
its three files.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from gitstate import merge3, statefile
from gitstate.errors import GitStateError

NAME = "gitstate"
ATTRIBUTES_LINE = f"projects/*/STATE.yaml merge={NAME}"


def command() -> str:
    """The driver command for git config, with this interpreter's absolute path."""
    return f"{shlex.quote(sys.executable)} -m gitstate merge-driver %O %A %B %P"


def merge_files(base: Path, ours: Path, theirs: Path, path: str) -> tuple[int, list[str]]:
    """Merge three versions of ``path``; write the result to ``ours``. (exit code, messages)."""
    try:
        texts = [p.read_text(encoding="utf-8") for p in (base, ours, theirs)]
        base_doc = statefile.parse(texts[0], path) if texts[0].strip() else None
        ours_doc = statefile.parse(texts[1], path)
        theirs_doc = statefile.parse(texts[2], path)
    except (GitStateError, UnicodeDecodeError, OSError) as exc:
        return 1, [f"gitstate merge driver: cannot merge {path}: {exc}"]
    merged, conflicts = merge3.merge(
        base_doc.project if base_doc else None, ours_doc.project, theirs_doc.project
    )
    if conflicts:
        notes = [f"# gitstate merge conflict in {path}; settle these and `git add` the file:\n"]
        notes += [f"#   {str(c).replace(chr(10), ' ')}\n" for c in conflicts]
        ours.write_text("".join(notes) + texts[1], encoding="utf-8")
        return 1, [f"gitstate merge driver: {path}: {c}" for c in conflicts]
    text, _ = statefile.apply(ours_doc, texts[1], merged)
    ours.write_text(text, encoding="utf-8")
    return 0, []
