"""gitstate: task state for many agents, kept in git.

Each project's tasks live in ``projects/<name>/STATE.yaml`` on the state branch.
Every change is one commit built with git plumbing and published with a
compare-and-swap on the branch, so git's history is the audit log and git's
ref locking is the only coordination a writer needs.

Layers, from the bottom up: ``model`` (pure rules), ``statefile`` and
``yamlblock`` (the file format), ``git`` (the only module that runs git),
``store`` (the one writer of state), ``projects`` and ``tasks`` (operations),
``cli`` (click commands).
"""

__version__ = "0.1.0"
