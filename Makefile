# Skiff — the two commands a fresh machine needs: `make demo` and `make test`.
# Everything else here is what those two call.

SHELL := /bin/bash
CARGO ?= cargo
GUESTS_MANIFEST := tests/guests/Cargo.toml

.PHONY: demo test bench deps guests build lint fmt clean-data

## demo: build everything and start a local Skiff (see README)
demo: deps guests build
	./scripts/demo.sh

## test: install what is missing, build the guests, start a real etcd, run every test
test: deps guests
	./scripts/test.sh

## bench: run the benchmarks (release builds; numbers printed as tables)
bench: deps guests
	./scripts/bench.sh

## deps: the Rust target for guests and the Debian packages the tests need
deps:
	./scripts/deps.sh

guests:
	$(CARGO) build --manifest-path $(GUESTS_MANIFEST) --target wasm32-wasip2 --release

build:
	$(CARGO) build --workspace

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) fmt --manifest-path $(GUESTS_MANIFEST) --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --manifest-path $(GUESTS_MANIFEST) --target wasm32-wasip2 --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all
	$(CARGO) fmt --manifest-path $(GUESTS_MANIFEST) --all
