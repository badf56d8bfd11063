#!/usr/bin/env bash
# Runs every fuzz target of every crate for a short while (seconds per target: $1, default 60).
# Needs the nightly toolchain; installs cargo-fuzz from crates.io when it is missing.
set -euo pipefail
seconds=${1:-60}
cd "$(dirname "$0")/.."
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi
for dir in crates/*/fuzz; do
    [ -d "$dir" ] || continue
    for target in $(cd "$dir/.." && cargo +nightly fuzz list); do
        echo "fuzz: $dir $target for ${seconds}s"
        (cd "$dir/.." && cargo +nightly fuzz run "$target" -- -max_total_time="$seconds")
    done
done
