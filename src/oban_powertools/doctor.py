"""``oban-powertools doctor``: what is missing for a working control plane, and the fix.

Each check reports ``ok``, ``fail`` (with the fix) or ``skip`` (not applicable, or not
checkable because something it depends on failed, which is reported once, where it
failed). The checks only read: doctor never changes the database or the host's files.
"""

from __future__ import annotations

import asyncio
import inspect
import ipaddress
import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, LiteralString
from urllib.parse import urljoin, urlsplit, urlunsplit

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import DictRow

from .config import ENV_PREFIX, PREFIX_PATTERN, Config
from .db import connect_kwargs
from .db import migrate as migrations
from .errors import ConfigError, PowertoolsError
from .install.manifest import MANIFEST_NAME
from .project import find_project
from .runtime import presence
from .seams import AUTH_METHODS, DISPLAY_METHODS, DisplayContext, Resource

Status = Literal["ok", "fail", "skip"]

CHECKS = (
    "database",
    "oban_schema",
    "migrations",
    "config",
    "auth",
    "display",
    "mount",
    "leader",
    "bridge",
)
OBAN_TABLES = ("oban_jobs", "oban_leaders", "oban_producers")
# The parameters the library passes to each seam method (see seams.Auth, seams.DisplayPolicy).
SEAM_CALLS: dict[str, tuple[str, ...]] = {
    "current_actor": ("request",),
    "authorize": ("actor", "action", "resource"),
    "audit_principal": ("actor",),
    "display": ("kind", "value", "context"),
}

SERVER_VERSION: LiteralString = "SELECT current_setting('server_version') AS version"
OBAN_TABLES_PRESENT: LiteralString = """
SELECT table_name FROM information_schema.tables
WHERE table_schema = %(prefix)s AND table_name = ANY(%(tables)s)
"""


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str | None = None


@dataclass(frozen=True, slots=True)
class DoctorOptions:
    project_dir: Path = Path(".")
    config_path: str | None = None  # module:attr of a Config or a factory returning one
    database_url: str | None = None  # overrides the config's
    prefix: str | None = None  # overrides the config's
    url: str | None = None  # the mounted control plane, e.g. http://127.0.0.1:8000/ops/jobs/
    skip: frozenset[str] = frozenset()
    timeout: float = 5.0
    env: Mapping[str, str] = field(default_factory=lambda: os.environ)


def shown_url(url: str) -> str:
    """A database URL without its password, for output."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _load_config(options: DoctorOptions) -> tuple[Config | None, Check]:
    """The host's Config, found as every command finds it (:mod:`.project`), or why not."""
    try:
        project = find_project(options.project_dir)
    except PowertoolsError as exc:
        return None, Check("config", "fail", str(exc), f"Restore {MANIFEST_NAME} or pass --config.")
    try:
        config, source = project.load_config(
            options.config_path, options.env, database_url=options.database_url
        )
    except ConfigError as exc:
        return None, Check("config", "fail", f"{exc.setting}: {exc.problem}", exc.fix)
    return config, Check("config", "ok", f"{source.path or 'seams'} (from {source.setting})")


def _qualified(obj: object) -> str:
    kind = type(obj)
    return f"{kind.__module__}.{kind.__qualname__}"


def _signature_problems(seam: object, methods: Sequence[str]) -> list[str]:
    problems = []
    for method in methods:
        params = SEAM_CALLS[method]
        try:
            inspect.signature(getattr(seam, method)).bind(*params)
        except TypeError:
            problems.append(f"{method} cannot be called as {method}({', '.join(params)})")
        except ValueError:  # no signature available (a builtin): nothing to say
            continue
    return problems


def check_auth(config: Config) -> Check:
    auth = config.auth
    if problems := _signature_problems(auth, AUTH_METHODS):
        return Check(
            "auth",
            "fail",
            f"{_qualified(auth)}: " + "; ".join(problems),
            "Give the methods the library's parameters: current_actor(self, request), "
            "authorize(self, actor, action, resource), audit_principal(self, actor) "
            "(plain or async def).",
        )
    return Check("auth", "ok", f"{_qualified(auth)}: {', '.join(AUTH_METHODS)}")


def check_display(config: Config) -> Check:
    display = config.display
    name = _qualified(display)
    fix = (
        "Define a plain (not async) display(self, kind, value, context) returning a string "
        "or None: it runs for every value on every page."
    )
    if problems := _signature_problems(display, DISPLAY_METHODS):
        return Check("display", "fail", f"{name}: " + "; ".join(problems), fix)
    if inspect.iscoroutinefunction(display.display):
        return Check("display", "fail", f"{name}.display is async def", fix)
    probe = DisplayContext(surface="page", resource=Resource("job", "0"), field="password")
    try:
        shown: object = display.display("args", "doctor-probe", probe)
    except Exception as exc:
        return Check("display", "fail", f"{name}.display raised {type(exc).__name__}: {exc}", fix)
    if shown is not None and not isinstance(shown, str):
        return Check("display", "fail", f"{name}.display returned {type(shown).__name__}", fix)
    note = (
        "a job argument named 'password' is shown as is (nothing redacted)"
        if shown is None or shown == "doctor-probe"
        else f"a job argument named 'password' is shown as {shown!r}"
    )
    return Check("display", "ok", f"{name}; {note}")


def _opener(url: str) -> urllib.request.OpenerDirector:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    handlers: list[urllib.request.BaseHandler] = [NoRedirect()]
    host = urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if loopback:  # a proxy from the environment cannot reach this machine's own ports
        handlers.append(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener(*handlers)


def http_get(url: str, timeout: float) -> tuple[int, str | None]:
    """Status and Location of one GET, redirects not followed. Raises OSError when unreachable."""
    request = urllib.request.Request(url, headers={"User-Agent": "oban-powertools-doctor"})
    try:
        with _opener(url).open(request, timeout=timeout) as response:
            return int(response.status), response.headers.get("Location")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Location")


def check_mount(
    url: str, timeout: float, get: Callable[[str, float], tuple[int, str | None]]
) -> Check:
    if urlsplit(url).scheme not in ("http", "https"):
        return Check(
            "mount",
            "fail",
            f"{url!r} is not an http(s) URL",
            "Pass e.g. --url http://127.0.0.1:8000/ops/jobs/",
        )
    try:
        status, location = get(url, timeout)
        if status in (301, 302, 307, 308) and location and urljoin(url, location) == url + "/":
            url = url + "/"  # the mount's own trailing-slash redirect
            status, location = get(url, timeout)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Check(
            "mount",
            "fail",
            f"cannot reach {url}: {reason}",
            "Start the app (e.g. `uvicorn myapp.main:app`) and pass the URL it serves "
            "the mount at, e.g. --url http://127.0.0.1:8000/ops/jobs/",
        )
    if status == 200:
        return Check("mount", "ok", f"{url} answers 200")
    if status in (401, 403):
        return Check(
            "mount",
            "ok",
            f"{url} answers {status}: mounted, and the auth seam refuses an anonymous visitor",
        )
    if 300 <= status < 400 and location:
        return Check("mount", "ok", f"{url} redirects to {location} (sign-in)")
    if status == 404:
        return Check(
            "mount",
            "fail",
            f"{url} answers 404: nothing is mounted there",
            'Mount the control plane: app.mount("/ops/jobs", powertools.asgi_app()) '
            "(`oban-powertools install --app PATH` patches it in), restart the app, and "
            "pass the mount's URL with its trailing slash.",
        )
    if status >= 500:
        return Check(
            "mount",
            "fail",
            f"{url} answers {status}",
            "Read the app's log for the traceback. A common cause is the library's pool "
            "never opened: open it in the app's lifespan with `async with powertools:` "
            "(or FastAPI(lifespan=powertools_lifespan) from powertools_config.py).",
        )
    return Check(
        "mount",
        "fail",
        f"{url} answers {status}; expected 200, 401, 403 or a sign-in redirect",
        "Check that --url is the mount's address and that no middleware in front of it "
        "rewrites the request.",
    )


def check_bridge(
    bridge_url: str, timeout: float, get: Callable[[str, float], tuple[int, str | None]]
) -> Check:
    try:
        status, _ = get(bridge_url, timeout)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Check(
            "bridge",
            "fail",
            f"bridge_url {bridge_url} is unreachable: {reason}",
            "Start the Oban Web dashboard service at that address, or unset "
            f"{ENV_PREFIX}BRIDGE_URL to run without the bridge (/ops/jobs/oban then does "
            "not exist).",
        )
    if status >= 500:
        return Check(
            "bridge",
            "fail",
            f"bridge_url {bridge_url} answers {status}",
            "Check the dashboard service's log; the bridge forwards reads to it.",
        )
    return Check("bridge", "ok", f"{bridge_url} answers {status}; /ops/jobs/oban is read-only")


async def connect_database(
    url: str, prefix: str, connect_timeout: int
) -> tuple[Check, AsyncConnection[DictRow] | None]:
    try:
        conn = await AsyncConnection.connect(
            url, connect_timeout=connect_timeout, **connect_kwargs(prefix)
        )
    except (psycopg.Error, OSError) as exc:
        reason = " ".join(line.strip() for line in str(exc).splitlines()) or type(exc).__name__
        return Check(
            "database",
            "fail",
            f"cannot connect to {shown_url(url)}: {reason}",
            "Start PostgreSQL, or point DATABASE_URL (or --database-url) at a reachable "
            "postgresql:// URL with a user allowed to connect.",
        ), None
    cur = await conn.execute(SERVER_VERSION)
    row = await cur.fetchone()
    version = row["version"].split()[0] if row else "?"
    return Check("database", "ok", f"{shown_url(url)} (PostgreSQL {version})"), conn


async def check_oban_schema(conn: AsyncConnection[DictRow], prefix: str) -> Check:
    cur = await conn.execute(OBAN_TABLES_PRESENT, {"prefix": prefix, "tables": list(OBAN_TABLES)})
    present = {r["table_name"] for r in await cur.fetchall()}
    if missing := [t for t in OBAN_TABLES if t not in present]:
        return Check(
            "oban_schema",
            "fail",
            f"schema {prefix!r} lacks {', '.join(missing)}",
            f"Run `{migrations.migrate_command(prefix)}`: it installs oban's schema when absent, then "
            "the library's migrations.",
        )
    return Check("oban_schema", "ok", f"{', '.join(OBAN_TABLES)} in schema {prefix!r}")


async def check_migrations(url: str, prefix: str) -> Check:
    statuses = await migrations.status(url, prefix)
    if pending := [s for s in statuses if not s.applied]:
        return Check(
            "migrations",
            "fail",
            migrations.pending_words(pending, len(statuses)),
            f"Run `{migrations.migrate_command(prefix)}` (safe to re-run, and to run from two "
            "processes at once).",
        )
    at = f"{statuses[-1].version:04d} {statuses[-1].name}" if statuses else "none"
    return Check("migrations", "ok", f"current ({len(statuses)} applied, latest {at})")


# What a worker needs to run the runtime, in the two ways workers are started.
RUNTIME_FIX = (
    "Pass **powertools.oban_options() to Oban(...) in every worker process, e.g. "
    "`Oban(pool=pool, queues={...}, **powertools.oban_options())` (for `oban start`, name "
    'the runtime in oban.toml: powertools = "myapp.powertools_config:powertools" under '
    "[scheduler] and [stager]), then restart the workers."
)


async def check_leader(conn: AsyncConnection[DictRow]) -> Check:
    try:
        status = await presence.runtime_status(conn)
    except psycopg.errors.UndefinedTable:
        status = None  # migration 0003 pending (the migrations check says so): oban alone
    window = presence.LIVE_SECONDS
    stopped = _stopped_note(status.stopped) if status else ""
    if status is None or not status.leaders:
        if status is None:
            cur = await conn.execute(LEASES_RENEWED, {"window": window})
            if rows := await cur.fetchall():
                shown = ", ".join(f"{r['node']} leads {r['name']!r}" for r in rows)
                return Check("leader", "ok", f"{shown} (lease renewed within the last {window}s)")
        return Check(
            "leader",
            "fail",
            f"no oban node renewed leadership in the last {window}s (oban_leaders), so "
            f"leader-run work such as the cron scheduler is not running{stopped}",
            "Start your worker process: an Oban instance with queues against this database "
            "(leadership is on by default when it has queues), with "
            "**powertools.oban_options().",
        )
    leaders = ", ".join(f"{n.node} leads {n.name!r}" for n in status.leaders)
    if missing := status.without_runtime:
        detail, fix = runtime_missing(missing)
        return Check("leader", "fail", detail + stopped, fix)
    if not status.runtime_running:
        running = ", ".join(n.node for n in status.running)
        return Check(
            "leader",
            "fail",
            f"no node runs the Powertools runtime ({leaders}; running without it: {running}), so "
            "nothing schedules the stored cron entries (the Cron page lists none until a "
            f"node with the runtime starts){stopped}",
            RUNTIME_FIX,
        )
    return Check(
        "leader",
        "ok",
        f"{leaders} with the Powertools runtime (heartbeat within the last {window}s)" + stopped,
    )


# Before migration 0003 (no presence table): the leaders alone.
LEASES_RENEWED: LiteralString = """
SELECT name, node FROM oban_leaders
WHERE expires_at > timezone('UTC', now()) - make_interval(secs => %(window)s)
ORDER BY name
"""


def _stopped_note(nodes: Sequence[presence.ObanNode]) -> str:
    """Nodes that stopped are information, not a failure: a restart leaves the old node's
    rows behind until oban cleans them up."""
    if not nodes:
        return ""
    shown = ", ".join(f"{n.node} (no heartbeat for {n.seen_seconds_ago}s)" for n in nodes[:5])
    more = f" and {len(nodes) - 5} more" if len(nodes) > 5 else ""
    return f"; stopped: {shown}{more}"


def runtime_missing(nodes: list[presence.NodeWithoutRuntime]) -> tuple[str, str]:
    """What is wrong, and the fix, when running nodes of an instance that uses the runtime
    run without it."""
    parts = []
    for n in nodes:
        role = "leads" if n.leads else "runs queues of"
        queues = f" ({', '.join(n.queues)})" if n.queues and not n.leads else ""
        parts.append(f"{n.node} {role} {n.name!r}{queues}")
    detail = (
        f"{'; '.join(parts)} without the Powertools runtime. A leader without it runs oban's "
        "own cron scheduler, which ignores the database entries and operators' pauses; a node "
        "without it does not re-apply stored queue decisions when it restarts"
    )
    fix = (
        "Pass **powertools.oban_options() to Oban(...) on every node of that instance "
        "(same name), or name the runtime in oban.toml for `oban start`, then restart those "
        "nodes. A node that has just stopped shows as stopped once its heartbeat is "
        f"{presence.LIVE_SECONDS}s old."
    )
    return detail, fix


async def run(
    options: DoctorOptions,
    get: Callable[[str, float], tuple[int, str | None]] = http_get,
) -> list[Check]:
    """Every check, in :data:`CHECKS` order. ``get`` is the HTTP probe (tests may pass one)."""
    results: dict[str, Check] = {}
    skip = options.skip  # not run at all; reported as skipped at the end

    config, results["config"] = _load_config(options)
    if config is not None:
        results["auth"] = check_auth(config)
        results["display"] = check_display(config)

    env = options.env
    url = options.database_url or (config.database_url if config else env.get("DATABASE_URL"))
    prefix = options.prefix or (config.prefix if config else env.get(ENV_PREFIX + "PREFIX"))
    prefix = prefix or "public"
    if not url:
        results["database"] = Check(
            "database",
            "fail",
            "no database URL",
            "Set DATABASE_URL=postgresql://user@host:5432/dbname or pass --database-url.",
        )
    elif not PREFIX_PATTERN.match(prefix):
        results["database"] = Check(
            "database",
            "fail",
            f"prefix {prefix!r} is not a plain schema name",
            "Use lower-case letters, digits and underscores (e.g. 'public').",
        )
    elif "database" not in skip:
        results["database"], conn = await connect_database(
            url, prefix, max(1, int(options.timeout))
        )
        if conn is not None:
            try:
                if "oban_schema" not in skip:
                    results["oban_schema"] = await check_oban_schema(conn, prefix)
                if "migrations" not in skip:
                    results["migrations"] = await check_migrations(url, prefix)
                oban_ok = results.get("oban_schema", Check("", "ok", "")).status != "fail"
                if oban_ok and "leader" not in skip:
                    results["leader"] = await check_leader(conn)
            finally:
                await conn.close()

    if options.url and "mount" not in skip:
        results["mount"] = await asyncio.to_thread(check_mount, options.url, options.timeout, get)
    elif not options.url:
        results["mount"] = Check(
            "mount",
            "skip",
            "not checked: pass --url http://127.0.0.1:8000/ops/jobs/ while the app runs",
        )
    if config is not None and config.bridge_url and "bridge" not in skip:
        results["bridge"] = await asyncio.to_thread(
            check_bridge, config.bridge_url, options.timeout, get
        )
    elif config is not None and not config.bridge_url:
        results["bridge"] = Check(
            "bridge", "skip", "not configured (optional): /ops/jobs/oban does not exist"
        )

    for name in CHECKS:
        if name in skip:
            results[name] = Check(name, "skip", "skipped (--skip)")
        elif name not in results:
            results[name] = Check(name, "skip", f"not checked: {_blocked_by(name, results)}")
    return [results[name] for name in CHECKS]


DEPENDS_ON = {
    "auth": ("config",),
    "display": ("config",),
    "bridge": ("config",),
    "oban_schema": ("database",),
    "migrations": ("database",),
    "leader": ("database", "oban_schema"),
}
WHY_NOT_CHECKED = {
    "config": "the configuration did not load",
    "database": "the database is not reachable",
    "oban_schema": "oban's schema is missing",
}


def _blocked_by(name: str, results: Mapping[str, Check]) -> str:
    """Why a check could not run: the first failed check it depends on."""
    for dependency in DEPENDS_ON.get(name, ()):
        check = results.get(dependency)
        if check is not None and check.status != "ok":
            return WHY_NOT_CHECKED[dependency]
    return "a check it depends on did not pass"


def failed(checks: Sequence[Check]) -> bool:
    return any(check.status == "fail" for check in checks)


def render_json(checks: Sequence[Check]) -> str:
    counts = {status: sum(c.status == status for c in checks) for status in ("ok", "fail", "skip")}
    return json.dumps(
        {"ok": not failed(checks), "counts": counts, "checks": [asdict(c) for c in checks]},
        indent=2,
    )


MARKS = {"ok": "✓", "fail": "✗", "skip": "-"}
ASCII_MARKS = {"ok": "ok  ", "fail": "FAIL", "skip": "skip"}


def can_print_marks(encoding: str | None) -> bool:
    try:
        "".join(MARKS.values()).encode(encoding or "ascii")
    except (LookupError, UnicodeEncodeError):
        return False
    return True


def render_text(checks: Sequence[Check], *, ascii_only: bool = False) -> str:
    marks = ASCII_MARKS if ascii_only else MARKS
    width = max(len(name) for name in CHECKS)
    lines = []
    indent = " " * (len(marks["fail"]) + 1 + width + 2)
    for check in checks:
        lines.append(f"{marks[check.status]} {check.name:<{width}}  {check.detail}")
        if check.fix:
            lines.append(f"{indent}fix: {check.fix}")
    counts = [sum(c.status == s for c in checks) for s in ("ok", "fail", "skip")]
    lines.append(f"{counts[0]} passed, {counts[1]} failed, {counts[2]} skipped")
    return "\n".join(lines)
