"""Running every check in order, each once, and saying why one could not run."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from ..config import ENV_PREFIX, PREFIX_PATTERN
from .check import CHECKS, Check, DoctorOptions
from .database import check_leader, check_migrations, check_oban_schema, connect_database
from .host import check_auth, check_display, load_config
from .http import check_bridge, check_mount, http_get


async def run(
    options: DoctorOptions,
    get: Callable[[str, float], tuple[int, str | None]] = http_get,
) -> list[Check]:
    """Every check, in :data:`CHECKS` order. ``get`` is the HTTP probe (tests may pass one)."""
    results: dict[str, Check] = {}
    skip = options.skip  # not run at all; reported as skipped at the end

    config, results["config"] = load_config(options)
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
