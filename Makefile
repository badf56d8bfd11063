# fcgi-rs: every entry point a developer, an operator or CI needs.
# `make run` and `make test` are the two commands the README starts with.

SHELL := /bin/bash
CARGO ?= cargo
# How long `make fuzz` runs each fuzz target, in seconds.
FUZZ_SECONDS ?= 60

.PHONY: all deps build test lint fmt fuzz bench run clean install uninstall deb release-bin

all: build

# Installs, on a fresh Debian machine, every system package the tests need (only what is missing).
deps:
	@bash tests/deps.sh

build:
	$(CARGO) build --workspace --all-targets

# The end-to-end tests start the real `fcgi` binary and the hello example, which `cargo test`
# does not build for another package's tests: build them first.
test: deps
	$(CARGO) build --workspace --bins --examples
	$(CARGO) test --workspace --all-targets
	$(CARGO) test --workspace --doc

# The library crates' docs build without a warning (the binary's clap help texts are not
# rustdoc, and the tests crate is no library anyone reads), and every published crate packages
# and builds from its package alone (`cargo package` checks each against the others' packages).
PACKAGE_DIR := $(or $(CARGO_TARGET_DIR),target)/package-check

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --exclude fcgi-cli --exclude fcgi-tests
	@# Each crate's package is built against the others' packages, which cargo unpacks under
	@# CARGO_HOME and builds as registry crates: those it never rebuilds once built, so a crate
	@# changed since an earlier run, at the same version, would be checked as it was then. The
	@# packages' own build directory goes first (their dependencies' builds stay).
	rm -rf "$${CARGO_HOME:-$$HOME/.cargo}"/registry/src/-*/fcgi-* $(PACKAGE_DIR)/debug/deps/*fcgi_* \
	    $(PACKAGE_DIR)/debug/.fingerprint/fcgi-* $(PACKAGE_DIR)/debug/build/fcgi-*
	$(CARGO) package --workspace --exclude fcgi-tests --allow-dirty --quiet --target-dir $(PACKAGE_DIR)

fmt:
	$(CARGO) fmt --all

fuzz:
	@bash tests/fuzz.sh $(FUZZ_SECONDS)

# fcgi-rs against nginx's own `return 200`, the floor (bench/floor.c) and PHP-FPM and C libfcgi,
# through nginx with wrk and straight with `fcgi bench`, with each backend's CPU per request;
# fcgi-rs's scaling and idle connections; one axum app on fcgi-rs, hyper and tokio-fastcgi;
# rewrites the last section of docs/BENCHMARKS.md. BENCH_SECONDS and ROUNDS (environment)
# change its length. The criterion micro-benchmarks of
# the crates are `cargo bench`.
bench:
	@CARGO="$(CARGO)" bash bench/run.sh

# Builds (release), starts `fcgi serve --app hello` with nginx in front of it on a free
# 127.0.0.1 port, prints the URL, and runs until Ctrl-C. APP=echo and PORT=N change it.
run: deps
	@CARGO="$(CARGO)" bash tests/run.sh

clean:
	$(CARGO) clean

# ---------------------------------------------------------------------------------------------
# Installing: `make install` (PREFIX, DESTDIR) and the Debian package, `make deb`. The README's
# "Install" section says what goes where; tests/integration/ops/install.rs checks both.

# GNU's directory variables: each can be set on the command line on its own.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
# systemd reads /usr/local/lib/systemd/system as well as /usr/lib/systemd/system.
UNITDIR ?= $(PREFIX)/lib/systemd/system
# The directories bash-completion, zsh and fish look in by default for PREFIX /usr/local. Debian's
# zsh does not read /usr/share/zsh/site-functions: `make deb` uses vendor-completions instead.
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR ?= $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d
# The example config goes with the documentation, not in /etc: the unit reads
# /etc/fcgi-rs/serve.conf whatever PREFIX is, and an installed file there would be a live config
# that starts a demo app and that a package upgrade would have to reconcile with the operator's.
DOCDIR ?= $(PREFIX)/share/doc/fcgi-rs
INSTALL ?= install
# `-s` strips the binary as it is installed (`make deb` does).
INSTALL_STRIP ?=
# The binary installed. The default is built (release) first; any other is taken as it is (the
# tests install the debug build they already have).
RELEASE_BIN := target/release/fcgi
BIN ?= $(RELEASE_BIN)
# The systemd units installed, their ExecStart rewritten to name $(BINDIR)/fcgi.
UNITS := $(wildcard dist/systemd/*.service dist/systemd/*.socket)

release-bin:
	$(CARGO) build --release -p fcgi-cli --bin fcgi

# The man pages and completions are written by the binary being installed (the hidden
# `fcgi generate`), so they describe exactly its options.
install: $(if $(filter $(RELEASE_BIN),$(BIN)),release-bin)
	@test -x "$(BIN)" || { echo "install: $(BIN) is not an executable" >&2; exit 1; }
	$(INSTALL) -d "$(DESTDIR)$(BINDIR)" "$(DESTDIR)$(MANDIR)/man1" "$(DESTDIR)$(UNITDIR)" \
		"$(DESTDIR)$(BASHCOMPDIR)" "$(DESTDIR)$(ZSHCOMPDIR)" "$(DESTDIR)$(FISHCOMPDIR)" \
		"$(DESTDIR)$(DOCDIR)"
	$(INSTALL) -m 755 $(INSTALL_STRIP) "$(BIN)" "$(DESTDIR)$(BINDIR)/fcgi"
	set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	for unit in $(UNITS); do \
		sed -E 's#^(Exec[A-Za-z]*=[-@:+!]*)[^ ]*/fcgi( |$$)#\1$(BINDIR)/fcgi\2#' "$$unit" \
			> "$$tmp/$${unit##*/}"; \
		$(INSTALL) -m 644 "$$tmp/$${unit##*/}" "$(DESTDIR)$(UNITDIR)/"; \
	done; \
	mkdir "$$tmp/man1"; \
	"$(BIN)" generate man "$$tmp/man1" >/dev/null; \
	$(INSTALL) -m 644 "$$tmp"/man1/*.1 "$(DESTDIR)$(MANDIR)/man1/"; \
	"$(BIN)" generate completions bash > "$$tmp/fcgi"; \
	"$(BIN)" generate completions zsh > "$$tmp/_fcgi"; \
	"$(BIN)" generate completions fish > "$$tmp/fcgi.fish"; \
	$(INSTALL) -m 644 "$$tmp/fcgi" "$(DESTDIR)$(BASHCOMPDIR)/fcgi"; \
	$(INSTALL) -m 644 "$$tmp/_fcgi" "$(DESTDIR)$(ZSHCOMPDIR)/_fcgi"; \
	$(INSTALL) -m 644 "$$tmp/fcgi.fish" "$(DESTDIR)$(FISHCOMPDIR)/fcgi.fish"
	$(INSTALL) -m 644 dist/systemd/serve.conf "$(DESTDIR)$(DOCDIR)/serve.conf.example"

# Removes what `make install` put in place (same variables), and the directories left empty
# that are fcgi-rs's own; shared directories (man1, completions) stay.
uninstall:
	rm -f "$(DESTDIR)$(BINDIR)/fcgi" \
		$(foreach unit,$(notdir $(UNITS)),"$(DESTDIR)$(UNITDIR)/$(unit)") \
		"$(DESTDIR)$(MANDIR)/man1/fcgi.1" "$(DESTDIR)$(MANDIR)"/man1/fcgi-*.1 \
		"$(DESTDIR)$(BASHCOMPDIR)/fcgi" "$(DESTDIR)$(ZSHCOMPDIR)/_fcgi" \
		"$(DESTDIR)$(FISHCOMPDIR)/fcgi.fish" "$(DESTDIR)$(DOCDIR)/serve.conf.example"
	rmdir "$(DESTDIR)$(DOCDIR)" 2>/dev/null || true

# The Debian package: what `make install PREFIX=/usr` installs (zsh completion in Debian's
# vendor-completions, binary stripped), staged in the directory the assets of
# crates/fcgi-cli/Cargo.toml's [package.metadata.deb] name, then packed by cargo-deb (installed
# first if missing: a few minutes). The .deb goes to DEB_OUT; DEB_FLAGS go to `cargo deb`
# (`--fast`: lighter compression).
CARGO_DEB_VERSION ?= 3.8.0
DEB_ROOT := crates/fcgi-cli/target/deb-root
DEB_OUT ?= target/debian
DEB_FLAGS ?=

deb: $(if $(filter $(RELEASE_BIN),$(BIN)),release-bin)
	$(CARGO) deb --version >/dev/null 2>&1 || \
		$(CARGO) install cargo-deb --locked --version $(CARGO_DEB_VERSION)
	rm -rf "$(DEB_ROOT)"
	$(MAKE) --no-print-directory install BIN="$(BIN)" DESTDIR="$(CURDIR)/$(DEB_ROOT)" \
		PREFIX=/usr ZSHCOMPDIR=/usr/share/zsh/vendor-completions INSTALL_STRIP=-s
	$(CARGO) deb -p fcgi-cli --no-build --output "$(DEB_OUT)" $(DEB_FLAGS)
