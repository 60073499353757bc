# SPDX-License-Identifier: Apache-2.0
# Short names for the common jobs. Each is one uv command; see README.md.
UV ?= python3 -m uv

.PHONY: run test lint fmt typecheck supply-chain spdx-fix terraform-validate image bench bench-targets bench-resilience bench-observability bench-streams bench-provider-pool bench-charts charts docs loadtest lock

run:        ## start the server on :8080 (offline model unless a provider key is set)
	$(UV) run --all-extras endpoints-hello

test:       ## the whole test suite (starts its own servers and fakes)
	$(UV) run --all-extras pytest

lint:       ## ruff lint + format check + mypy strict
	$(UV) run --all-extras ruff check src apps tests bench scripts deploy examples loadtest
	$(UV) run --all-extras ruff format --check src apps tests bench scripts deploy examples loadtest
	$(UV) run --all-extras mypy
	$(UV) run --all-extras mypy loadtest/locustfile.py bench/charts.py

fmt:        ## format and autofix
	$(UV) run --all-extras ruff format src apps tests bench scripts deploy examples loadtest
	$(UV) run --all-extras ruff check --fix src apps tests bench scripts deploy examples loadtest

typecheck:
	$(UV) run --all-extras mypy
	$(UV) run --all-extras mypy loadtest/locustfile.py bench/charts.py

supply-chain: ## SPDX headers, dependency licences, vulnerability audit, SBOM (build/sbom.cdx.json)
	$(UV) run --all-extras python scripts/spdx_headers.py --check
	$(UV) run --all-extras python scripts/licenses.py
	$(UV) run --all-extras python scripts/audit_deps.py
	$(UV) run --all-extras python scripts/sbom.py

spdx-fix:   ## add the SPDX licence line to every file that lacks it
	$(UV) run --all-extras python scripts/spdx_headers.py --fix

terraform-validate: ## terraform init (providers from the registry) + validate, in a temporary copy
	$(UV) run --all-extras python scripts/terraform_validate.py

image:      ## build the container image (needs docker with buildx; nothing is pushed)
	docker buildx build --file Dockerfile --tag genkit-endpoints:ci --load .

bench:      ## side-by-side benchmark: ours vs bare FastAPI and a hand-written Genkit app (installs wrk if missing)
	$(UV) run --all-extras python bench/run.py

bench-targets: ## every performance target in one table: bench, cache/in-flight part of resilience, 5 000 streams (~10 min)
	$(UV) run --all-extras python bench/targets.py

bench-resilience: ## cache hits, rate-limit cost, 1 000 in flight, stampedes (memory and Redis)
	$(UV) run --all-extras python bench/resilience.py

bench-observability: ## what metrics, the audit log and tracing cost; /metrics scrape time with 4 workers
	$(UV) run --all-extras python bench/observability.py

bench-streams: ## one process holding 500, 2 000, 5 000 concurrent SSE streams: frames, memory, loop lag
	$(UV) run --all-extras python bench/streams.py

bench-provider-pool: ## model calls through the pooled provider connections vs a new connection per call
	$(UV) run --all-extras python bench/provider_pool.py

bench-charts: ## run the bench and the 1 000-in-flight part of resilience, then redraw the docs' charts (~7 min)
	$(UV) run --all-extras python bench/run.py --output bench/results/latest.json
	$(UV) run --all-extras python bench/resilience.py --parts inflight --output bench/results/resilience.json
	$(UV) run --all-extras python bench/charts.py --collect bench/results

charts:     ## redraw docs/benchmarks/*.svg from docs/benchmarks/results.json
	$(UV) run --all-extras python bench/charts.py

docs:       ## build the documentation site into site/ (strict: broken links fail)
	NO_MKDOCS_2_WARNING=1 $(UV) run --all-extras mkdocs build --strict --site-dir site

loadtest:   ## one minute of the Locust mix against HOST (default: a server on :8080), gated on thresholds
	$(UV) run --all-extras locust -f loadtest/locustfile.py --headless -u 50 -r 10 -t 1m \
	  --host $(or $(HOST),http://127.0.0.1:8080) --max-fail-ratio 0.01 --max-p95-ms 2000

lock:
	$(UV) lock
