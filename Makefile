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
	tools/bootstrap && .venv/bin/ruff check src tests tools examples bench && .venv/bin/mypy && .venv/bin/lint-imports --no-cache

# Benchmarks (bench/): results go to bench/RESULTS.md. `bench` is the quick run (100k jobs,
# a few rounds: minutes); `bench-full` measures 100k, 1M and 10M jobs and keeps the seeded
# databases in the private 'bench' cluster for the next run (seeding 10M takes minutes).
bench:
	tools/bootstrap
	.venv/bin/python -m bench.pages --sizes 100000 --rounds 10 --naive-rounds 2 --section pages-quick
	.venv/bin/python -m bench.actions --rounds 50 --section actions-quick
	.venv/bin/python -m bench.runtime --jobs 10000 --rounds 1 --section runtime-quick
	.venv/bin/python -m bench.limits --jobs 5000 --rounds 1 --available 100000 --fetches 100 --section limits-quick
	.venv/bin/python -m bench.lifeline --jobs 100000 --passes 20 --section lifeline-quick

.PHONY: bench-full
bench-full:
	tools/bootstrap
	.venv/bin/python -m bench.pages --sizes 100000,1000000,10000000 --rounds 50 --naive-rounds 3 --keep
	.venv/bin/python -m bench.actions --rounds 200 --bulk 100000
	.venv/bin/python -m bench.runtime --jobs 20000 --rounds 7
	.venv/bin/python -m bench.limits --jobs 10000 --rounds 5 --available 1000000 --partitions 100,10000
	.venv/bin/python -m bench.lifeline --jobs 1000000 --passes 50

doctor:
	.venv/bin/oban-powertools doctor --config examples.fastapi_host.powertools_config:build_config --url http://127.0.0.1:$(PORT)/ops/jobs/

clean:
	-.venv/bin/python tools/pgcluster.py stop test
	-.venv/bin/python tools/pgcluster.py stop demo
	-.venv/bin/python tools/pgcluster.py stop bench
	-.venv/bin/python tools/pgcluster.py stop load
	rm -rf .tmp .venv .tools
