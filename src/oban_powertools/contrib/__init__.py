"""Host-framework glue, kept out of the core. FastAPI and Starlette need none
(``app.mount("/ops/jobs", powertools.asgi_app())``); Django: :mod:`.django`
(docs/hosts/django.md); Litestar: :mod:`.litestar` (docs/hosts/litestar.md)."""
