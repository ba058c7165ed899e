"""Config validation: every bad setting fails fast with a message naming it and the fix."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest

from oban_powertools.config import Config, from_env, load_object
from oban_powertools.errors import ConfigError
from oban_powertools.seams import DisplayContext, Principal, Resource

URL = "postgresql://postgres@127.0.0.1:5432/app"


class GoodAuth:
    def current_actor(self, request: Any) -> Any:
        return None

    def authorize(self, actor: Any, action: str, resource: Resource) -> bool:
        return False

    def audit_principal(self, actor: Any) -> Principal:
        return Principal("x", "user", "X")


class NoAuthorize:
    def current_actor(self, request: Any) -> Any:
        return None

    def audit_principal(self, actor: Any) -> Principal:
        return Principal("x", "user", "X")


class GoodDisplay:
    def display(self, kind: str, value: Any, context: DisplayContext) -> str | None:
        return None


@pytest.fixture
def host_module() -> Iterator[str]:
    module = types.ModuleType("fake_host_ops")
    module.Auth = GoodAuth  # type: ignore[attr-defined]
    module.Display = GoodDisplay  # type: ignore[attr-defined]
    module.Half = NoAuthorize  # type: ignore[attr-defined]
    module.config = Config(database_url=URL, auth=GoodAuth(), display=GoodDisplay())  # type: ignore[attr-defined]
    module.not_config = 42  # type: ignore[attr-defined]
    sys.modules["fake_host_ops"] = module
    yield "fake_host_ops"
    del sys.modules["fake_host_ops"]


def test_valid_config_builds() -> None:
    config = Config(database_url=URL, auth=GoodAuth(), display=GoodDisplay())
    assert config.prefix == "public" and config.bridge_url is None


def test_missing_auth_seam_names_the_setting_and_the_fix() -> None:
    with pytest.raises(ConfigError) as err:
        Config(database_url=URL, auth=None, display=GoodDisplay())  # type: ignore[arg-type]
    message = str(err.value)
    assert message.startswith("auth: missing")
    assert "OBAN_POWERTOOLS_AUTH" in message and "Nothing is allowed without it" in message


def test_missing_display_policy() -> None:
    with pytest.raises(ConfigError, match=r"^display: missing.*OBAN_POWERTOOLS_DISPLAY"):
        Config(database_url=URL, auth=GoodAuth(), display=None)  # type: ignore[arg-type]


def test_seam_lacking_a_method() -> None:
    with pytest.raises(ConfigError, match=r"^auth: NoAuthorize lacks authorize"):
        Config(database_url=URL, auth=NoAuthorize(), display=GoodDisplay())  # type: ignore[arg-type]


def test_bad_import_paths(host_module: str) -> None:
    with pytest.raises(ConfigError, match=r"^auth: 'nocolon' is not an import path"):
        load_object("nocolon", "auth")
    with pytest.raises(ConfigError, match=r"^auth: cannot import module 'no_such_mod_xyz'"):
        load_object("no_such_mod_xyz:Auth", "auth")
    with pytest.raises(ConfigError, match=r"has no attribute 'Missing'"):
        load_object(f"{host_module}:Missing", "auth")


def test_from_env_loads_seams_by_path(host_module: str) -> None:
    env = {
        "DATABASE_URL": URL,
        "OBAN_POWERTOOLS_AUTH": f"{host_module}:Auth",
        "OBAN_POWERTOOLS_DISPLAY": f"{host_module}:Display",
        "OBAN_POWERTOOLS_PREFIX": "ops",
    }
    config = from_env(env)
    assert isinstance(config.auth, GoodAuth) and config.prefix == "ops"


def test_from_env_with_half_seam_fails(host_module: str) -> None:
    env = {
        "DATABASE_URL": URL,
        "OBAN_POWERTOOLS_AUTH": f"{host_module}:Half",
        "OBAN_POWERTOOLS_DISPLAY": f"{host_module}:Display",
    }
    with pytest.raises(ConfigError, match="lacks authorize"):
        from_env(env)


def test_from_env_without_auth_fails(host_module: str) -> None:
    with pytest.raises(ConfigError, match="^auth: missing"):
        from_env({"DATABASE_URL": URL, "OBAN_POWERTOOLS_DISPLAY": f"{host_module}:Display"})


def test_config_path(host_module: str) -> None:
    config = from_env({"OBAN_POWERTOOLS_CONFIG": f"{host_module}:config"})
    assert config.database_url == URL
    with pytest.raises(ConfigError, match="not an oban_powertools Config"):
        from_env({"OBAN_POWERTOOLS_CONFIG": f"{host_module}:not_config"})


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"database_url": ""}, "database_url: missing"),
        ({"database_url": "mysql://x/y"}, "database_url: must be a postgresql"),
        ({"prefix": "Ops; DROP"}, "prefix: 'Ops; DROP' is not a plain schema name"),
        ({"bridge_url": "ftp://x"}, "bridge_url: 'ftp://x' is not an http(s) URL"),
        ({"require_reason": "sometimes"}, "require_reason: unknown policy"),
        ({"reason_min_length": 0}, "reason_min_length/reason_max_length"),
        ({"pool_timeout": 0}, "pool_timeout: 0 is not a number of seconds"),
        ({"pool_timeout": -1.5}, "pool_timeout: -1.5 is not a number of seconds"),
        ({"pool_timeout": 601}, "pool_timeout: 601 is not a number of seconds"),
        ({"pool_timeout": True}, "pool_timeout: True is not a number of seconds"),
        ({"pool_timeout": "10"}, "pool_timeout: '10' is not a number of seconds"),
    ],
)
def test_invalid_settings(overrides: dict[str, Any], fragment: str) -> None:
    settings: dict[str, Any] = {"database_url": URL, "auth": GoodAuth(), "display": GoodDisplay()}
    settings.update(overrides)
    with pytest.raises(ConfigError) as err:
        Config(**settings)
    assert fragment in str(err.value)


def config(**settings: Any) -> Config:
    return Config(database_url=URL, auth=GoodAuth(), display=GoodDisplay(), **settings)


def test_the_optional_settings_default_to_a_random_secret_no_origins_and_15_minutes() -> None:
    plain = config()
    assert plain.csrf_secret is None and plain.trusted_origins == ()
    assert plain.stuck_after_seconds == 15 * 60
    assert plain.lifeline_grace_seconds == 60.0
    assert config(lifeline_grace_seconds=2.5).lifeline_grace_seconds == 2.5
    tuned = config(
        csrf_secret="s" * 16,
        trusted_origins=["https://ops.example.com", "http://127.0.0.1:8000"],
        stuck_after_seconds=60,
    )
    # A list from the host is kept as a tuple: the Config stays frozen and hashable.
    assert tuned.trusted_origins == ("https://ops.example.com", "http://127.0.0.1:8000")
    assert tuned.csrf_secret == "s" * 16 and tuned.stuck_after_seconds == 60


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"csrf_secret": "short"}, r"^csrf_secret: is 5 characters long; it must be at least 16"),
        ({"csrf_secret": b"\x00" * 15}, r"^csrf_secret: is 15 characters long"),
        ({"csrf_secret": ""}, r"^csrf_secret: is 0 characters long"),
        ({"csrf_secret": 1234567890123456}, r"^csrf_secret: is a int, not a string"),
        ({"trusted_origins": "https://ops.example.com"}, r"^trusted_origins: .* is not a list"),
        ({"trusted_origins": ("ops.example.com",)}, r"^trusted_origins: 'ops.example.com' is not"),
        ({"trusted_origins": ("https://ops.example.com/ops",)}, r"^trusted_origins: .*/ops'"),
        ({"trusted_origins": ("https://ops.example.com?x=1",)}, r"^trusted_origins: "),
        ({"trusted_origins": ("https://u@ops.example.com",)}, r"^trusted_origins: "),
        ({"trusted_origins": ("https://ops.example.com:port",)}, r"^trusted_origins: "),
        ({"trusted_origins": ("ftp://ops.example.com",)}, r"^trusted_origins: "),
        ({"trusted_origins": ("https://",)}, r"^trusted_origins: "),
        ({"trusted_origins": (None,)}, r"^trusted_origins: None is not an origin"),
        ({"stuck_after_seconds": 0}, r"^stuck_after_seconds: 0 is not a positive whole number"),
        ({"stuck_after_seconds": -60}, r"^stuck_after_seconds: -60 is not"),
        ({"stuck_after_seconds": 1.5}, r"^stuck_after_seconds: 1.5 is not"),
        ({"stuck_after_seconds": True}, r"^stuck_after_seconds: True is not"),
        ({"stuck_after_seconds": "900"}, r"^stuck_after_seconds: '900' is not"),
        ({"lifeline_grace_seconds": 0}, r"^lifeline_grace_seconds: 0 is not a number of seconds"),
        ({"lifeline_grace_seconds": -1.0}, r"^lifeline_grace_seconds: -1.0 is not"),
        ({"lifeline_grace_seconds": True}, r"^lifeline_grace_seconds: True is not"),
        ({"lifeline_grace_seconds": "60"}, r"^lifeline_grace_seconds: '60' is not"),
        ({"lifeline_grace_seconds": 10**6}, r"^lifeline_grace_seconds: 1000000 is not"),
    ],
)
def test_a_bad_optional_setting_is_refused_naming_it_and_the_fix(
    settings: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem) as err:
        config(**settings)
    setting = next(iter(settings))
    assert err.value.setting == setting and err.value.fix


def test_the_untyped_extra_dict_is_gone() -> None:
    # A host still passing extra={...} learns at start-up, not by a setting silently ignored.
    with pytest.raises(TypeError, match="extra"):
        config(extra={"csrf_secret": "s" * 16})


def test_from_env_reads_the_optional_settings(host_module: str) -> None:
    env = {
        "DATABASE_URL": URL,
        "OBAN_POWERTOOLS_AUTH": f"{host_module}:Auth",
        "OBAN_POWERTOOLS_DISPLAY": f"{host_module}:Display",
    }
    plain = from_env(env)
    assert plain.csrf_secret is None and plain.trusted_origins == ()
    tuned = from_env(
        {
            **env,
            "OBAN_POWERTOOLS_CSRF_SECRET": "one-secret-for-every-process",
            "OBAN_POWERTOOLS_TRUSTED_ORIGINS": "https://ops.example.com, http://127.0.0.1:8000",
            "OBAN_POWERTOOLS_STUCK_AFTER_SECONDS": "300",
        }
    )
    assert tuned.csrf_secret == "one-secret-for-every-process"
    assert tuned.trusted_origins == ("https://ops.example.com", "http://127.0.0.1:8000")
    assert tuned.stuck_after_seconds == 300
    with pytest.raises(ConfigError, match=r"^OBAN_POWERTOOLS_STUCK_AFTER_SECONDS: 'soon'"):
        from_env({**env, "OBAN_POWERTOOLS_STUCK_AFTER_SECONDS": "soon"})
    with pytest.raises(ConfigError, match=r"^stuck_after_seconds: 0 is not"):
        from_env({**env, "OBAN_POWERTOOLS_STUCK_AFTER_SECONDS": "0"})
    with pytest.raises(ConfigError, match=r"^csrf_secret: is 5 characters"):
        from_env({**env, "OBAN_POWERTOOLS_CSRF_SECRET": "short"})
    with pytest.raises(ConfigError, match=r"^trusted_origins: 'ops.example.com' is not"):
        from_env({**env, "OBAN_POWERTOOLS_TRUSTED_ORIGINS": "ops.example.com"})
