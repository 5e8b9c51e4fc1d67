"""Service definitions that keep ``gitstate daemon`` running: a systemd unit and a launchd plist."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import escape


def _argv(repo: Path, agents: int, projects: Sequence[str]) -> list[str]:
    argv = [sys.executable, "-m", "gitstate", "-C", str(repo), "daemon", "--agents", str(agents)]
    for name in projects:
        argv += ["--project", name]
    return argv


def systemd(repo: Path, agents: int, projects: Sequence[str]) -> str:
    command = " ".join(shlex.quote(arg) for arg in _argv(repo, agents, projects))
    return f"""[Unit]
Description=gitstate daemon for {repo}
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
WorkingDirectory={repo}
ExecStart={command}
# SIGTERM lets running tasks finish (--grace, 30s), then releases the rest.
KillSignal=SIGTERM
TimeoutStopSec=90
Restart=always
RestartSec=2
Environment=GIT_TERMINAL_PROMPT=0
NoNewPrivileges=yes
PrivateTmp=yes
MemoryMax=4G
TasksMax=1024
LimitNOFILE=8192
Nice=5

[Install]
WantedBy=default.target
"""


def launchd(repo: Path, agents: int, projects: Sequence[str]) -> str:
    arguments = "\n".join(f"        <string>{escape(arg)}</string>" for arg in _argv(repo, agents, projects))
    label = "dev.gitstate." + "".join(c if c.isalnum() else "-" for c in repo.name).strip("-")
    log = escape(str(repo / ".git" / "gitstate" / "logs" / "daemon.log"))
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
    <key>Label</key>
    <string>{escape(label)}</string>
    <key>ProgramArguments</key>
    <array>
{arguments}
    </array>
    <key>WorkingDirectory</key>
    <string>{escape(str(repo))}</string>
    <key>RunAtLoad</key>
    <true/>
    <key>KeepAlive</key>
    <true/>
    <key>ThrottleInterval</key>
    <integer>2</integer>
    <key>ExitTimeOut</key>
    <integer>90</integer>
    <key>EnvironmentVariables</key>
    <dict>
        <key>GIT_TERMINAL_PROMPT</key>
        <string>0</string>
    </dict>
    <key>SoftResourceLimits</key>
    <dict>
        <key>NumberOfFiles</key>
        <integer>8192</integer>
    </dict>
    <key>StandardOutPath</key>
    <string>{log}</string>
    <key>StandardErrorPath</key>
    <string>{log}</string>
</dict>
</plist>
"""
