"""Building and validating the configuration, and loading seams by import path.

Every problem is raised at start-up as a :class:`ConfigError` naming the setting and the
fix. There is no fallback that grants access: a missing auth seam is an error, not "allow".
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

from .errors import ConfigError
from .seams import AUTH_METHODS, DISPLAY_METHODS, Auth, DisplayPolicy

PREFIX_PATTERN = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
ENV_PREFIX = "OBAN_POWERTOOLS_"

ReasonPolicy = Literal["destructive", "all"]

# An HMAC key shorter than this is guessable enough to forge a form's token.
CSRF_SECRET_MIN_LENGTH = 16
# An executing job older than this is listed as stuck (15 minutes, unless the host says).
DEFAULT_STUCK_AFTER_SECONDS = 15 * 60
# An executing job whose producer has not heartbeated for this long is orphaned and the
# lifeline rescues it: four of oban's refreshes (every 15 s), so one slow refresh never
# makes a live node's jobs look orphaned.
DEFAULT_LIFELINE_GRACE_SECONDS = 60.0


@dataclass(frozen=True)
class Config:
    """Everything the library needs from the host.

    ``auth`` and ``display`` are the host-owned seams; ``database_url`` (or the conninfo
    of the host's pool) is where oban's and the library's tables live, in schema
    ``prefix``. ``bridge_url`` turns on the read-only Oban Web bridge.

    ``csrf_secret`` signs the control plane's form tokens: at least 16 characters (or
    bytes), the same in every web process so that a form one renders is accepted by
    another; unset, each process draws a random one (forms reload after a restart).
    ``trusted_origins`` are origins (``https://ops.example.com``, scheme and host, an
    optional port, nothing after) whose pages may post to the control plane besides its
    own host, e.g. behind a proxy that rewrites ``Host``. ``stuck_after_seconds`` is how
    long a job may execute before the overview lists it as stuck (a positive number of
    seconds, 15 minutes by default). ``lifeline_grace_seconds`` is how long a producer may
    go without a heartbeat (oban's refresher touches it every 15 s) before its executing
    jobs count as orphaned and the lifeline rescues them (60 s by default). A bad value of any setting raises ``ConfigError``
    naming it, before anything starts.
    """

    database_url: str
    auth: Auth
    display: DisplayPolicy
    prefix: str = "public"
    bridge_url: str | None = None
    login_url: str | None = None
    preview_ttl: timedelta = timedelta(minutes=10)
    require_reason: ReasonPolicy = "destructive"
    reason_min_length: int = 3
    reason_max_length: int = 1000
    pool_max_size: int = 5
    # How long a request waits for a database connection before it is answered with 503
    # ("the database is unavailable") instead of hanging: psycopg's default is 30 s.
    pool_timeout: float = 10.0
    csrf_secret: str | bytes | None = None
    trusted_origins: tuple[str, ...] = ()
    stuck_after_seconds: int = DEFAULT_STUCK_AFTER_SECONDS
    lifeline_grace_seconds: float = DEFAULT_LIFELINE_GRACE_SECONDS

    def __post_init__(self) -> None:
        # A list is as good as a tuple from the host; kept as a tuple so Config stays frozen.
        if isinstance(self.trusted_origins, Iterable) and not isinstance(
            self.trusted_origins, str | bytes
        ):
            object.__setattr__(self, "trusted_origins", tuple(self.trusted_origins))
        validate(self)


def validate(config: Config) -> None:
    if not isinstance(config.database_url, str) or not config.database_url:
        raise ConfigError(
            "database_url",
            "missing",
            "Pass Config(database_url=...) or set DATABASE_URL to a postgresql:// URL.",
        )
    if urlsplit(config.database_url).scheme not in ("postgresql", "postgres", ""):
        raise ConfigError(
            "database_url",
            "must be a postgresql:// URL or a libpq conninfo string",
            "Set DATABASE_URL=postgresql://user@host:5432/dbname.",
        )
    check_seam("auth", config.auth, AUTH_METHODS, ENV_PREFIX + "AUTH")
    check_seam("display", config.display, DISPLAY_METHODS, ENV_PREFIX + "DISPLAY")
    if not PREFIX_PATTERN.match(config.prefix):
        raise ConfigError(
            "prefix",
            f"{config.prefix!r} is not a plain schema name",
            "Use lower-case letters, digits and underscores (e.g. 'public' or 'ops').",
        )
    if config.bridge_url is not None and urlsplit(config.bridge_url).scheme not in (
        "http",
        "https",
    ):
        raise ConfigError(
            "bridge_url",
            f"{config.bridge_url!r} is not an http(s) URL",
            "Set it to the Oban Web dashboard's address (e.g. http://127.0.0.1:4000) "
            "or leave it unset.",
        )
    if not (
        isinstance(config.lifeline_grace_seconds, int | float)
        and not isinstance(config.lifeline_grace_seconds, bool)
        and 0 < config.lifeline_grace_seconds <= 24 * 3600
    ):
        raise ConfigError(
            "lifeline_grace_seconds",
            f"{config.lifeline_grace_seconds!r} is not a number of seconds between 0 and 86400",
            f"Use e.g. lifeline_grace_seconds={DEFAULT_LIFELINE_GRACE_SECONDS:g}, well above "
            "oban's refresher interval (15 s), or leave it unset.",
        )
    if config.require_reason not in ("destructive", "all"):
        raise ConfigError(
            "require_reason",
            f"unknown policy {config.require_reason!r}",
            "Use 'destructive' or 'all'.",
        )
    if not (1 <= config.reason_min_length <= config.reason_max_length <= 10_000):
        raise ConfigError(
            "reason_min_length/reason_max_length",
            "must satisfy 1 <= min <= max <= 10000",
            "Pick e.g. reason_min_length=3, reason_max_length=1000.",
        )
    if not (
        isinstance(config.pool_timeout, int | float)
        and not isinstance(config.pool_timeout, bool)
        and 0 < config.pool_timeout <= 600
    ):
        raise ConfigError(
            "pool_timeout",
            f"{config.pool_timeout!r} is not a number of seconds between 0 and 600",
            "Use e.g. pool_timeout=10.0.",
        )
    if config.preview_ttl <= timedelta(0):
        raise ConfigError("preview_ttl", "must be positive", "Use e.g. timedelta(minutes=10).")
    check_csrf_secret(config.csrf_secret)
    check_trusted_origins(config.trusted_origins)
    if not (
        isinstance(config.stuck_after_seconds, int)
        and not isinstance(config.stuck_after_seconds, bool)
        and config.stuck_after_seconds > 0
    ):
        raise ConfigError(
            "stuck_after_seconds",
            f"{config.stuck_after_seconds!r} is not a positive whole number of seconds",
            f"Use e.g. stuck_after_seconds={DEFAULT_STUCK_AFTER_SECONDS} (15 minutes), "
            "or leave it unset.",
        )


def check_csrf_secret(secret: object) -> None:
    if secret is None:
        return
    if not isinstance(secret, str | bytes):
        raise ConfigError(
            "csrf_secret",
            f"is a {type(secret).__name__}, not a string",
            "Pass the secret as a str (e.g. from OBAN_POWERTOOLS_CSRF_SECRET), or leave it "
            "unset for a random per-process one.",
        )
    if len(secret) < CSRF_SECRET_MIN_LENGTH:
        raise ConfigError(
            "csrf_secret",
            f"is {len(secret)} characters long; it must be at least {CSRF_SECRET_MIN_LENGTH}",
            "Use a long random value, e.g. python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))', the same in every web process.",
        )


def check_trusted_origins(origins: object) -> None:
    if not isinstance(origins, tuple):
        raise ConfigError(
            "trusted_origins",
            f"{origins!r} is not a list of origins",
            "Pass a tuple or list, e.g. trusted_origins=('https://ops.example.com',).",
        )
    for origin in origins:
        if not is_origin(origin):
            raise ConfigError(
                "trusted_origins",
                f"{origin!r} is not an origin",
                "Write each as scheme://host[:port] with nothing after, "
                "e.g. 'https://ops.example.com' or 'http://127.0.0.1:8000'.",
            )


def is_origin(value: object) -> bool:
    """``scheme://host[:port]``, as a browser sends it in an ``Origin`` header."""
    if not isinstance(value, str):
        return False
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and "@" not in parts.netloc
        and parts.path in ("", "/")
        and not parts.query
        and not parts.fragment
        and "?" not in value
        and "#" not in value
    )


def check_seam(setting: str, seam: object, methods: tuple[str, ...], env: str) -> None:
    what = "an auth seam" if setting == "auth" else "a display policy"
    if seam is None:
        raise ConfigError(
            setting,
            "missing",
            f"Pass {what} (an object with {', '.join(methods)}) as Config({setting}=...) "
            f"or set {env}=module:attribute. Nothing is allowed without it.",
        )
    missing = [m for m in methods if not callable(getattr(seam, m, None))]
    if missing:
        raise ConfigError(
            setting,
            f"{type(seam).__name__} lacks {', '.join(missing)}",
            f"Implement {', '.join(methods)} on it (see oban_powertools.seams).",
        )


def load_object(path: str, setting: str) -> Any:
    """Import ``module:attribute``; instantiate it when it is a class."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(
            setting, f"{path!r} is not an import path", "Write it as 'package.module:Attribute'."
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            setting,
            f"cannot import module {module_name!r} ({exc})",
            "Check the path and that the host project is on PYTHONPATH.",
        ) from exc
    try:
        obj = getattr(module, attr)
    except AttributeError as exc:
        raise ConfigError(
            setting,
            f"module {module_name!r} has no attribute {attr!r}",
            "Check the name after ':'.",
        ) from exc
    if isinstance(obj, type):
        try:
            obj = obj()
        except TypeError as exc:
            raise ConfigError(
                setting,
                f"{path} could not be built without arguments ({exc})",
                "Point the setting at an instance, or give the class a no-argument constructor.",
            ) from exc
    return obj


def from_env(env: Mapping[str, str] | None = None, **overrides: Any) -> Config:
    """Build a Config from import paths and environment variables (used by the CLI).

    ``OBAN_POWERTOOLS_CONFIG=module:attr`` may name a ready Config (or a no-argument
    callable returning one); otherwise the seams come from ``OBAN_POWERTOOLS_AUTH`` and
    ``OBAN_POWERTOOLS_DISPLAY``, the database from ``DATABASE_URL``, and the optional
    settings from ``OBAN_POWERTOOLS_PREFIX``, ``_BRIDGE_URL``, ``_CSRF_SECRET``,
    ``_TRUSTED_ORIGINS`` (comma-separated), ``_STUCK_AFTER_SECONDS`` and
    ``_LIFELINE_GRACE_SECONDS``.
    """
    env = os.environ if env is None else env
    if config_path := overrides.pop("config_path", None) or env.get(ENV_PREFIX + "CONFIG"):
        loaded = load_object(config_path, ENV_PREFIX + "CONFIG")
        if callable(loaded) and not isinstance(loaded, Config):
            loaded = loaded()
        if not isinstance(loaded, Config):
            raise ConfigError(
                ENV_PREFIX + "CONFIG",
                f"{config_path} is a {type(loaded).__name__}, not an oban_powertools Config",
                "Point it at a Config instance or a function returning one.",
            )
        return loaded
    auth = overrides.pop("auth", None)
    if auth is None and (path := env.get(ENV_PREFIX + "AUTH")):
        auth = load_object(path, "auth")
    display = overrides.pop("display", None)
    if display is None and (path := env.get(ENV_PREFIX + "DISPLAY")):
        display = load_object(path, "display")
    settings: dict[str, Any] = {
        "database_url": overrides.pop("database_url", None) or env.get("DATABASE_URL", ""),
        "auth": auth,
        "display": display,
        "prefix": overrides.pop("prefix", None) or env.get(ENV_PREFIX + "PREFIX", "public"),
        "bridge_url": overrides.pop("bridge_url", None)
        or env.get(ENV_PREFIX + "BRIDGE_URL")
        or None,
    }
    if secret := env.get(ENV_PREFIX + "CSRF_SECRET"):
        settings["csrf_secret"] = secret
    if origins := env.get(ENV_PREFIX + "TRUSTED_ORIGINS"):
        settings["trusted_origins"] = tuple(o.strip() for o in origins.split(",") if o.strip())
    if stuck_after := env.get(ENV_PREFIX + "STUCK_AFTER_SECONDS"):
        settings["stuck_after_seconds"] = whole_seconds(
            stuck_after, ENV_PREFIX + "STUCK_AFTER_SECONDS"
        )
    if grace := env.get(ENV_PREFIX + "LIFELINE_GRACE_SECONDS"):
        try:
            settings["lifeline_grace_seconds"] = float(grace.strip())
        except ValueError:
            raise ConfigError(
                ENV_PREFIX + "LIFELINE_GRACE_SECONDS",
                f"{grace!r} is not a number of seconds",
                "Set it to e.g. 60.",
            ) from None
    settings.update(overrides)
    return Config(**settings)


def whole_seconds(text: str, setting: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ConfigError(
            setting, f"{text!r} is not a whole number of seconds", "Set it to e.g. 900."
        ) from None


def database_only(database_url: str, prefix: str = "public") -> DatabaseSettings:
    """Settings for commands that need the database but no seams (migrate, doctor)."""
    if not PREFIX_PATTERN.match(prefix):
        raise ConfigError("prefix", f"{prefix!r} is not a plain schema name", "Use e.g. 'public'.")
    if not database_url:
        raise ConfigError("database_url", "missing", "Pass --database-url or set DATABASE_URL.")
    return DatabaseSettings(database_url, prefix)


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    database_url: str
    prefix: str


ConfigFactory = Callable[[], Config]
