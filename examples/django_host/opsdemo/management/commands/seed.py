"""``python manage.py seed``: the demo's operators and its cron entries.

``ops-demo`` (password ``demo``) is staff with every oban_powertools permission;
``ops-viewer`` may only view; ``ops-guest`` is staff without any of them. Safe to re-run.
"""

from __future__ import annotations

import asyncio
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management.base import BaseCommand

from oban_powertools.contrib.django.auth import APP_LABEL, VIEW_PERMISSIONS
from oban_powertools.cron.declarations import declared, sync_declarations
from oban_powertools.db import connect

from ... import jobs  # noqa: F401  (declares the cron entries)

USERS = {
    # username: (first name, last name, which permissions)
    "ops-demo": ("Ops", "Demo", "all"),
    "ops-viewer": ("Ops", "Viewer", "view"),
    "ops-guest": ("Ops", "Guest", "none"),
}


async def sync_cron() -> int:
    conn = await connect(settings.DATABASE_URL)
    try:
        async with conn.transaction():
            await sync_declarations(conn, declared())
    finally:
        await conn.close()
    return len(declared())


class Command(BaseCommand):
    help = "Create the demo operators (password 'demo') and store the declared cron entries."

    def handle(self, *args: Any, **options: Any) -> None:
        ours = Permission.objects.filter(content_type__app_label=APP_LABEL)
        grants = {
            "all": list(ours),
            "view": list(ours.filter(codename__in=VIEW_PERMISSIONS)),
            "none": [],
        }
        if not grants["all"]:
            self.stderr.write("no oban_powertools permissions: run `manage.py migrate` first")
            raise SystemExit(1)
        model = get_user_model()
        for username, (first, last, which) in USERS.items():
            user, _ = model.objects.get_or_create(username=username)
            user.first_name, user.last_name = first, last
            user.is_staff = True
            user.set_password("demo")
            user.save()
            user.user_permissions.set(grants[which])
        count = asyncio.run(sync_cron())
        self.stdout.write(f"seeded {len(USERS)} operators and {count} cron entries")
