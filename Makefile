# The README's two commands: `make run` and `make test`.
CARGO ?= cargo

.PHONY: run test build release lint fmt bench

## Serve with the embedded PostgreSQL in ./frontdesk-data (or $FRONTDESK_DATA_DIR).
run:
	$(CARGO) run --release -p frontdesk -- serve

## Lint, then every test against real PostgreSQL clusters the harness starts itself.
test:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --quiet -- -D warnings
	# cargo test runs each test binary as one process, so the harness starts one
	# PostgreSQL cluster per binary (nextest would start one per test).
	$(CARGO) test --workspace
	# The second form of the request context (separate SET LOCALs, what Citus needs) on
	# plain PostgreSQL, through every route (api, isolation), the concurrent limits and
	# the tenant lookups (the access version travels as a SET LOCAL too).
	FRONTDESK_CONTEXT_MODE=citus $(CARGO) test -p frontdesk-test --test api --test isolation --test limits --test pgbouncer --test journey --test tenant_lookups

build:
	$(CARGO) build --workspace

release:
	$(CARGO) build --release -p frontdesk

fmt:
	$(CARGO) fmt --all

## Load test (see docs/BENCHMARKS.md): needs wrk and pgbench.
bench: release
	bench/run.sh
