"""Settings of the example Django host: one PostgreSQL database, from DATABASE_URL.

Django's own tables (users, sessions, permissions) and oban's and oban-powertools' live in
the same database, as in a real deployment.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent
DATABASE_URL = os.environ.get(
    "DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/oban_powertools_django_demo"
)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "demo-only-secret-change-me")
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    # The control plane's permissions and `manage.py oban_worker`.
    "oban_powertools.contrib.django",
    "opsdemo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "opsdemo.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
ASGI_APPLICATION = "opsdemo.asgi.application"


def database(url: str) -> dict[str, object]:
    parts = urlsplit(url)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
    }


DATABASES = {"default": database(DATABASE_URL)}

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/ops/jobs/"
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# `python manage.py oban_worker` runs this node: oban's queues with Powertools' runtime.
OBAN_POWERTOOLS = {
    "POWERTOOLS": "opsdemo.powertools_config:powertools",
    "QUEUES": {"default": 10, "mailers": 5},
    "IMPORTS": ["opsdemo.jobs"],
}
