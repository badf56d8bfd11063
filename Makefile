# fcgi-rs: every entry point a developer, an operator or CI needs.
# `make run` and `make test` are the two commands the README starts with.

SHELL := /bin/bash
CARGO ?= cargo
# How long `make fuzz` runs each fuzz target, in seconds.
FUZZ_SECONDS ?= 60

.PHONY: all deps build test lint fmt fuzz bench run clean

all: build

# Installs, on a fresh Debian machine, every system package the tests need (only what is missing).
deps:
	@bash tests/deps.sh

build:
	$(CARGO) build --workspace --all-targets

# The end-to-end tests start the real `fcgi` binary, which `cargo test` does not build for
# another package's tests: build it first.
test: deps
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace --all-targets
	$(CARGO) test --workspace --doc

# The library crates' docs build without a warning (the binary's clap help texts are not
# rustdoc, and the tests crate is no library anyone reads).
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --exclude fcgi-cli --exclude fcgi-tests

fmt:
	$(CARGO) fmt --all

fuzz:
	@bash tests/fuzz.sh $(FUZZ_SECONDS)

# fcgi-rs against nginx's own `return 200` and against PHP-FPM and C libfcgi, through nginx
# with wrk and straight with `fcgi bench`; rewrites the last section of docs/BENCHMARKS.md.
# BENCH_SECONDS and ROUNDS (environment) change its length. The criterion micro-benchmarks of
# the crates are `cargo bench`.
bench:
	@CARGO="$(CARGO)" bash bench/run.sh

# Builds (release), starts `fcgi serve --app hello` with nginx in front of it on a free
# 127.0.0.1 port, prints the URL, and runs until Ctrl-C. APP=echo and PORT=N change it.
run: deps
	@CARGO="$(CARGO)" bash tests/run.sh

clean:
	$(CARGO) clean
