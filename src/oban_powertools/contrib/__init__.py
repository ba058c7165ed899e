"""Host-framework glue, kept out of the core. FastAPI and Starlette need none
(``app.mount("/ops/jobs", powertools.asgi_app())``); see :mod:`.django` and
:mod:`.litestar`."""
