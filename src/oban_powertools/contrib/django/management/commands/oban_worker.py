"""``python manage.py oban_worker``: an oban node with oban-powertools' runtime."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from oban_powertools.contrib.django.worker import from_django_settings, run
from oban_powertools.errors import PowertoolsError


class Command(BaseCommand):
    help = (
        "Run an oban worker node with oban-powertools' runtime (the cron scheduler and the "
        "stored queue decisions), configured by settings.OBAN_POWERTOOLS; stops on SIGTERM."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--queues", help="NAME=LIMIT,... instead of OBAN_POWERTOOLS['QUEUES']")
        parser.add_argument("--node", help="This node's name (default: oban's, from the host)")

    def handle(self, *args: Any, **options: Any) -> None:
        if not logging.getLogger().handlers:
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        try:
            worker = from_django_settings(options.get("queues"))
            asyncio.run(run(worker, node=options.get("node")))
        except PowertoolsError as exc:
            raise CommandError(str(exc)) from exc
