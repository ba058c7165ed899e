"""DjangoAuth's rules, on Django's own user objects: deny by default, staff, permissions."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from oban_powertools import ConfigError, Resource
from oban_powertools.contrib.django import DjangoAuth, permission_names

CRON = Resource("cron_entry", "nightly_sync")


@pytest.fixture
def user_model(django_site: dict[str, Any]) -> Any:
    from django.contrib.auth import get_user_model

    return get_user_model()


def test_every_page_and_action_has_a_permission() -> None:
    names = permission_names()
    assert "view_overview" in names and "pause_cron_entry" in names and "scale_queue" in names
    assert DjangoAuth().permission_for("pause_cron_entry") == "oban_powertools.pause_cron_entry"
    # A name the library does not define maps to nothing: refused to everyone.
    assert DjangoAuth().permission_for("drop_database") is None


async def test_superusers_pass_only_as_staff_and_never_for_unknown_names(user_model: Any) -> None:
    auth = DjangoAuth()
    root = user_model(username="root", is_superuser=True, is_staff=True, is_active=True)
    assert await auth.authorize(root, "pause_cron_entry", CRON) is True
    assert await auth.authorize(root, "drop_database", CRON) is False
    root.is_staff = False
    assert await auth.authorize(root, "pause_cron_entry", CRON) is False
    assert await DjangoAuth(require_staff=False).authorize(root, "pause_cron_entry", CRON)
    root.is_active = False
    assert await DjangoAuth(require_staff=False).authorize(root, "view_cron", CRON) is False


async def test_a_mapping_renames_or_closes_a_permission(user_model: Any) -> None:
    auth = DjangoAuth(permissions={"run_cron_entry": None, "view_cron": "ops.view_cron"})
    root = user_model(username="root", is_superuser=True, is_staff=True, is_active=True)
    assert auth.permission_for("view_cron") == "ops.view_cron"
    assert await auth.authorize(root, "run_cron_entry", CRON) is False
    assert await auth.authorize(None, "view_cron", CRON) is False
    assert await auth.authorize_many(root, "view_cron", [CRON, CRON]) == [True, True]


def test_the_principal_is_the_username_and_full_name(user_model: Any) -> None:
    user = user_model(pk=42, username="ops-demo", first_name="Ops", last_name="Demo")
    principal = DjangoAuth().audit_principal(user)
    assert (principal.id, principal.type, principal.label) == ("ops-demo", "user", "Ops Demo")
    assert DjangoAuth(principal_id="pk").audit_principal(user).id == "42"
    nameless = user_model(username="ci-bot")
    assert DjangoAuth().audit_principal(nameless).label == "ci-bot"


def test_without_django_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "django", None)
    with pytest.raises(ConfigError, match=r"oban-powertools\[django\]"):
        DjangoAuth()
