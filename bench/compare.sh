#!/usr/bin/env bash
# Two builds of fcgi against each other, in the same run: `fcgi serve --app hello` of each on a
# Unix socket, driven in turn by `fcgi bench -c 32` (a connection per request, or kept with
# `keep`), interleaved round by round so that both see the same machine. Prints, per round and
# build, the rate, the server's own CPU per request (utime + stime from /proc/PID/stat, read
# after the ")" that ends the process name), its peak RSS and its threads.
#
# With EXEC=PROGRAM in the environment, each serves `--app exec --workers 4 -- PROGRAM` (a
# FastCGI program such as bench/hello.c's build) instead of hello, and the CPU is that of fcgi's
# master and worker, not the programs'.
#
# Usage: bench/compare.sh OLD_FCGI NEW_FCGI [new|keep] [ROUNDS] [SECONDS]
# For example, a build of an older commit beside this one:
#   git worktree add /tmp/old COMMIT && (cd /tmp/old && cargo build --release -p fcgi-cli)
#   bench/compare.sh /tmp/old/target/release/fcgi target/release/fcgi new 4
set -euo pipefail
old=$1 new=$2 mode=${3:-new} rounds=${4:-3} seconds=${5:-5}
dir=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT
tck=$(getconf CLK_TCK)
cpu_ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
# The server's own processes: the one started and, with a master, its workers (the programs
# are the workers' children).
own_ticks() {
    local total child
    total=$(cpu_ticks "$1")
    for child in $(pgrep -P "$1"); do total=$((total + $(cpu_ticks "$child"))); done
    echo "$total"
}
app=(--app hello)
[ -n "${EXEC:-}" ] && app=(--app exec --workers 4 -- "$EXEC")
keep=()
[ "$mode" = keep ] && keep=(--keep-conn)
for round in $(seq 1 "$rounds"); do
    for which in old new; do
        bin=$old
        [ "$which" = new ] && bin=$new
        socket="$dir/$which-$round.sock"
        "$bin" serve --listen "unix:$socket" --log-level warning "${app[@]}" >/dev/null 2>&1 &
        pid=$!
        for _ in $(seq 100); do
            [ -S "$socket" ] && break
            sleep 0.05
        done
        # Warm: every thread and program started.
        "$new" bench --connect "unix:$socket" -c 32 -n 2000 --quiet "${keep[@]}" /hello >/dev/null
        before=$(own_ticks "$pid")
        out=$("$new" bench --connect "unix:$socket" -c 32 -d "$seconds" --quiet "${keep[@]}" /hello)
        after=$(own_ticks "$pid")
        served=$(awk '/requests:/ { print $2 }' <<<"$out")
        rate=$(awk '/rate:/ { print $2 }' <<<"$out")
        hwm=$(awk '/VmHWM/ { print $2 }' "/proc/$pid/status")
        threads=$(awk '/Threads/ { print $2 }' "/proc/$pid/status")
        us=$(awk -v t="$((after - before))" -v hz="$tck" -v n="$served" \
            'BEGIN { printf "%.1f", t * 1e6 / hz / n }')
        echo "$mode round $round $which: $rate requests/s, $us µs of CPU a request, peak RSS $hwm kB, $threads threads"
        kill "$pid"
        wait "$pid" 2>/dev/null || true
        pid=
    done
done
