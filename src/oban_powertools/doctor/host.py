"""Checks of the host's configuration and of the seams it plugs in (auth, display)."""

from __future__ import annotations

import inspect
from collections.abc import Sequence

from ..config import Config
from ..errors import ConfigError, PowertoolsError
from ..install.manifest import MANIFEST_NAME
from ..project import find_project
from ..seams import AUTH_METHODS, DISPLAY_METHODS, DisplayContext, Resource
from .check import Check, DoctorOptions

# The parameters the library passes to each seam method (see seams.Auth, seams.DisplayPolicy).
SEAM_CALLS: dict[str, tuple[str, ...]] = {
    "current_actor": ("request",),
    "authorize": ("actor", "action", "resource"),
    "audit_principal": ("actor",),
    "display": ("kind", "value", "context"),
}


def load_config(options: DoctorOptions) -> tuple[Config | None, Check]:
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
