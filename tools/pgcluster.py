"""A private, throwaway PostgreSQL cluster for tests and the demo.

Stdlib only, so it runs before the project's environment exists:

    python tools/pgcluster.py start [NAME] [--durable]   # prints the server URL
    python tools/pgcluster.py url [NAME]
    python tools/pgcluster.py stop [NAME]

NAME (default "dev") keeps the test suite's cluster apart from the demo's, so one never
stops the other. The cluster lives in a gitignored folder (``.tmp/pg-NAME``), listens on
127.0.0.1 at a free port with trust auth, and is owned by an unprivileged user:
PostgreSQL refuses to run as root, so as root it runs as ``postgres`` (installing
Debian's ``postgresql`` package first when the server binaries are missing).

Test and demo clusters hold throwaway data and run with durability off (fsync,
synchronous_commit, full_page_writes), which makes them much faster. ``--durable`` keeps
PostgreSQL's defaults: the benchmarks use it, because a commit's cost is only meaningful
against the real floor of a flushed WAL. A running cluster started the other way is
restarted with the requested settings.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUPERUSER = "postgres"


class ClusterError(RuntimeError):
    pass


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    if found:
        return Path(found[-1])
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("PostgreSQL server binaries missing: installing Debian's postgresql", file=sys.stderr)
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "install", "-y", "-qq", "postgresql"], check=True, env=env)
        return _bindir()
    raise ClusterError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found. Install PostgreSQL "
        "(Debian: apt-get install postgresql) or set DATABASE_URL to an existing database."
    )


def _run_as() -> list[str]:
    """Prefix that runs a command as the unprivileged cluster owner."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True)
    return ["runuser", "-u", "postgres", "--"]


def _home(name: str) -> Path:
    """The cluster folder: in the checkout, unless the owner cannot reach it there."""
    pointer = ROOT / ".tmp" / f"pg-{name}.home"
    if pointer.exists() and Path(pointer.read_text().strip()).is_dir():
        return Path(pointer.read_text().strip())
    home = ROOT / ".tmp" / f"pg-{name}"
    home.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(home, user="postgres")
        probe = subprocess.run([*_run_as(), "test", "-w", str(home)], check=False)
        if probe.returncode != 0:
            # A parent folder the owner cannot traverse (e.g. a 0700 clone dir).
            home = Path(tempfile.mkdtemp(prefix="oban-powertools-pg-"))
            shutil.chown(home, user="postgres")
    pointer.write_text(str(home))
    return home


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def url(name: str = "dev") -> str:
    home = _home(name)
    port_file = home / "port"
    if not port_file.exists():
        raise ClusterError(
            "the private cluster is not running: run 'python tools/pgcluster.py start'"
        )
    return f"postgresql://{SUPERUSER}@127.0.0.1:{port_file.read_text().strip()}/postgres"


def _ready(port: int) -> bool:
    bindir = _bindir()
    res = subprocess.run(
        [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-q"], check=False
    )
    return res.returncode == 0


def start(name: str = "dev", *, durable: bool = False) -> str:
    home = _home(name)
    data = home / "data"
    bindir = _bindir()
    prefix = _run_as()
    port_file = home / "port"
    mode_file = home / "mode"
    mode = "durable" if durable else "fast"
    if port_file.exists() and _ready(int(port_file.read_text())):
        if mode_file.exists() and mode_file.read_text().strip() == mode:
            return url(name)
        stop(name)
    if not (data / "PG_VERSION").exists():
        subprocess.run(
            [
                *prefix,
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-instructions",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    port = _free_port()
    opts = (
        f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c max_connections=300 "
        "-c shared_buffers=256MB"
    )
    if not durable:
        opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    subprocess.run(
        [
            *prefix,
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(home / "server.log"),
            "-o",
            opts,
            "-w",
            "-t",
            "60",
            "start",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    port_file.write_text(str(port))
    mode_file.write_text(mode)
    deadline = time.monotonic() + 30
    while not _ready(port):
        if time.monotonic() > deadline:
            raise ClusterError(f"cluster did not accept connections; see {home / 'server.log'}")
        time.sleep(0.2)
    return url(name)


def stop(name: str = "dev") -> None:
    home = _home(name)
    data = home / "data"
    if (data / "postmaster.pid").exists():
        subprocess.run(
            [*_run_as(), str(_bindir() / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
            check=False,
            stdout=subprocess.DEVNULL,
        )
    (home / "port").unlink(missing_ok=True)
    (home / "mode").unlink(missing_ok=True)


def main(argv: list[str]) -> int:
    flags = {a for a in argv[1:] if a.startswith("--")}
    args = [a for a in argv[1:] if not a.startswith("--")]
    command = args[0] if args else "start"
    name = args[1] if len(args) > 1 else "dev"
    if flags - {"--durable"} or (flags and command != "start"):
        print("usage: pgcluster.py start [NAME] [--durable] | url|stop [NAME]", file=sys.stderr)
        return 2
    try:
        if command == "start":
            print(start(name, durable="--durable" in flags))
        elif command == "url":
            print(url(name))
        elif command == "stop":
            stop(name)
        else:
            print("usage: pgcluster.py start [NAME] [--durable] | url|stop [NAME]", file=sys.stderr)
            return 2
    except (ClusterError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
