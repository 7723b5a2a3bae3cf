"""A real Postfix, Debian's, run from a directory of its own for one test module.

It listens on 127.0.0.1 on a free port, relays for nobody, and delivers every message for its
virtual domains into one Maildir (``inbox/new``), byte for byte as it queued it: what a
receiving MTA made of what herald sent. The system's Postfix (installed unconfigured by
``scripts/bootstrap.sh``) is never configured nor started. Needs root: Postfix's master runs as
root and its daemons as the ``postfix`` user.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from herald.ops.embedded import free_port

POSTFIX = Path("/usr/sbin/postfix")
MASTER_CF = (Path("/etc/postfix/master.cf"), Path("/usr/share/postfix/master.cf.dist"))
DOMAINS = ("example.cn", "example.com", "herald-credit.example")


def unavailable() -> str | None:
    """Why a Postfix cannot run here, or None."""
    if not POSTFIX.exists():
        return "Debian's postfix is not installed (./test.sh installs it, unconfigured)"
    if os.geteuid() != 0:
        return "Postfix's master must run as root"
    try:
        pwd.getpwnam("postfix")
    except KeyError:
        return "the postfix user is missing (install Debian's postfix package)"
    return None


def _master_cf(port: int) -> str:
    """Debian's master.cf with no chroot (the queue directory is a temp directory) and smtpd on
    ``port`` instead of 25."""
    source = next((p for p in MASTER_CF if p.exists()), None)
    if source is None:
        raise RuntimeError("no master.cf to start from in /etc/postfix or /usr/share/postfix")
    lines = []
    for line in source.read_text().splitlines():
        fields = line.split()
        if len(fields) >= 8 and not line[0].isspace() and not line.startswith("#"):
            fields[4] = "n"  # chroot
            if fields[0] == "smtp" and fields[1] == "inet":
                fields[0] = f"127.0.0.1:{port}"
            line = " ".join(fields)
        lines.append(line)
    return "\n".join(lines) + "\n"


class PostfixServer:
    """Postfix on a directory of its own: ``start``, ``messages``, ``stop`` (which removes it).

    The directory is made under the system's temp directory, readable by all: Postfix's daemons
    run as the ``postfix`` user, who cannot enter a test's private temp directory."""

    def __init__(self) -> None:
        home = Path(tempfile.mkdtemp(prefix="herald-postfix-"))
        home.chmod(0o755)
        self.home = home
        self.port = free_port()
        self.config = home / "etc"
        self.inbox = home / "mail" / "inbox"

    def start(self) -> PostfixServer:
        """Write the configuration and start the master; raises with its log if it fails."""
        user, group = pwd.getpwnam("postfix"), grp.getgrnam("postfix")
        for name in ("etc", "spool", "data", "mail"):
            (self.home / name).mkdir(parents=True, exist_ok=True)
        for name in ("data", "mail"):
            os.chown(self.home / name, user.pw_uid, group.gr_gid)
        for extra in ("dynamicmaps.cf", "dynamicmaps.cf.d"):
            source = Path("/etc/postfix") / extra
            if source.is_dir():
                shutil.copytree(source, self.config / extra, dirs_exist_ok=True)
            elif source.exists():
                shutil.copy(source, self.config / extra)
        log = self.home / "data" / "maillog"
        (self.config / "main.cf").write_text(
            "\n".join(
                [
                    "compatibility_level = 3.6",
                    f"config_directory = {self.config}",
                    f"queue_directory = {self.home / 'spool'}",
                    f"data_directory = {self.home / 'data'}",
                    f"maillog_file = {log}",
                    f"maillog_file_prefixes = {self.home / 'data'}",
                    "mail_owner = postfix",
                    "setgid_group = postdrop",
                    "myhostname = mx.herald.test",
                    "mydestination =",
                    "inet_interfaces = 127.0.0.1",
                    "inet_protocols = ipv4",
                    "mynetworks = 127.0.0.0/8",
                    "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination",
                    f"virtual_mailbox_domains = {', '.join(DOMAINS)}",
                    f"virtual_mailbox_base = {self.home / 'mail'}",
                    "virtual_mailbox_maps = static:inbox/",
                    f"virtual_uid_maps = static:{user.pw_uid}",
                    f"virtual_gid_maps = static:{group.gr_gid}",
                    "virtual_minimum_uid = 1",
                    "smtputf8_enable = yes",
                    "biff = no",
                    "",
                ]
            )
        )
        (self.config / "master.cf").write_text(_master_cf(self.port))
        done = subprocess.run(
            [str(POSTFIX), "-c", str(self.config), "start"], capture_output=True, text=True, timeout=60
        )
        if done.returncode != 0:
            raise RuntimeError(f"postfix start failed ({done.returncode}): {done.stderr}\n{self.log()}")
        return self

    def log(self) -> str:
        """Postfix's own log so far."""
        path = self.home / "data" / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def messages(self) -> list[bytes]:
        """Every message delivered so far, as the bytes in the Maildir."""
        new = self.inbox / "new"
        return [p.read_bytes() for p in sorted(new.iterdir())] if new.exists() else []

    def stop(self) -> None:
        """Stop the master and its daemons (killed if it does not stop)."""
        subprocess.run([str(POSTFIX), "-c", str(self.config), "stop"], capture_output=True, timeout=60)
        pid_file = self.home / "spool" / "pid" / "master.pid"
        if pid_file.exists():
            match = re.search(r"\d+", pid_file.read_text())
            if match:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(match.group()), signal.SIGKILL)
        shutil.rmtree(self.home, ignore_errors=True)
