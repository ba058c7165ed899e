# The two commands. Everything they need is set up by the scripts in tools/.
.PHONY: test demo env lint doctor bench clean

PORT ?= 8000

test:
	tools/test

demo:
	PORT=$(PORT) tools/demo

env:
	tools/bootstrap

lint:
	tools/bootstrap && .venv/bin/ruff check src tests tools examples bench && .venv/bin/mypy

doctor:
	.venv/bin/oban-powertools doctor --config examples.fastapi_host.powertools_config:build_config --url http://127.0.0.1:$(PORT)/ops/jobs/

clean:
	-.venv/bin/python tools/pgcluster.py stop test
	-.venv/bin/python tools/pgcluster.py stop demo
	rm -rf .tmp .venv .tools
