#!/usr/bin/env bash
# Part of `make bench` (bench/run.sh runs it before the report): a master of 8 pools against a
# master of its one pool.
#
#  - memory: `fcgi serve --config` of one pool (hello), and of 8 pools (hello twice, echo
#    twice, the CGI gateway twice, and twice `--app exec` of bench/hello.c, ondemand, so that no
#    program runs while idle), each idle after it serves: VmRSS and PSS summed over the master
#    and all its descendants; per extra pool, the difference over 7;
#  - throughput: the hello pool of each master behind one nginx (a server block each, upstream
#    keepalive 32), `wrk -t1 -c32` in ROUNDS interleaved rounds (alone, beside, alone, ...),
#    the 7 other pools idle.
#
# Called as `bench/pools.sh DIR RESULTS FCGI NGINX PORT` (DIR holds bench/hello.c's build as
# DIR/hello); BENCH_SECONDS and ROUNDS as for run.sh. Writes RESULTS/pools.tsv and
# RESULTS/pools_wrk_{alone,beside}_rN.txt; stops what it started.
set -euo pipefail
dir=$1/pools
results=$2
fcgi=$3
nginx=$4
port=$5
seconds=${BENCH_SECONDS:-4}
rounds=${ROUNDS:-3}
mkdir -p "$dir/cgi" "$dir/nginx/logs"
pids=()
stop() {
    local pid
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}
trap stop EXIT

printf '#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\nhello\\n"\n' >"$dir/cgi/hello.sh"
chmod 755 "$dir/cgi/hello.sh"

pool() { # NAME LINES...
    local name=$1
    shift
    printf '\n[%s]\nlisten = unix:%s/%s.sock\n' "$name" "$dir" "$name"
    printf '%s\n' "$@"
}
{
    echo "log-level = warning"
    pool alone "app = hello"
} >"$dir/alone.conf"
{
    echo "log-level = warning"
    pool beside "app = hello"
    pool hello2 "app = hello"
    pool echo1 "app = echo"
    pool echo2 "app = echo"
    pool cgi1 "app = cgi" "cgi-root = $dir/cgi"
    pool cgi2 "app = cgi" "cgi-root = $dir/cgi"
    pool exec1 "app = exec" "exec = $1/hello" "process-model = ondemand" "max-workers = 4" \
        "worker-idle-timeout = 1"
    pool exec2 "app = exec" "exec = $1/hello" "process-model = ondemand" "max-workers = 4" \
        "worker-idle-timeout = 1"
} >"$dir/beside.conf"

declare -A master
for name in alone beside; do
    "$fcgi" serve --config "$dir/$name.conf" >>"$dir/$name.log" 2>&1 &
    pids+=($!)
    master[$name]=$!
done
for _ in $(seq 200); do
    [ -S "$dir/alone.sock" ] && [ -S "$dir/beside.sock" ] && [ -S "$dir/exec2.sock" ] && break
    sleep 0.05
done

cat >"$dir/nginx/nginx.conf" <<EOF
worker_processes 1;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    upstream alone { server unix:$dir/alone.sock; keepalive 32; }
    upstream beside { server unix:$dir/beside.sock; keepalive 32; }
    server {
        listen 127.0.0.1:$port;
        location / { include /etc/nginx/fastcgi_params; fastcgi_keep_conn on; fastcgi_pass alone; }
    }
    server {
        listen 127.0.0.1:$((port + 1));
        location / { include /etc/nginx/fastcgi_params; fastcgi_keep_conn on; fastcgi_pass beside; }
    }
}
EOF
"$nginx" -p "$dir/nginx" -c "$dir/nginx/nginx.conf" -g 'daemon off;' &
pids+=($!)
for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$((port + 1))") 2>/dev/null && break
    sleep 0.05
done

# Every process of a master: itself and its descendants.
tree_of() { # PID
    local pid=$1 child
    echo "$pid"
    for child in $(ps -o pid= --ppid "$pid"); do tree_of "$child"; done
}
# Each pool serves a request first (its buffers and threads exist), then all sit idle: the
# exec pools' programs exit after their 1 s idle timeout.
for sock in "$dir"/*.sock; do
    "$fcgi" request --timeout 5 --connect "unix:$sock" "$dir/cgi/hello.sh" >/dev/null 2>&1 || true
done
sleep 3
for name in alone beside; do
    rss=0 pss=0 procs=0
    for pid in $(tree_of "${master[$name]}"); do
        rss=$((rss + $(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)))
        pss=$((pss + $(awk '/^Pss:/ { print $2 }' "/proc/$pid/smaps_rollup" 2>/dev/null || echo 0)))
        procs=$((procs + 1))
    done
    printf '%s_rss_kib\t%s\n%s_pss_kib\t%s\n%s_processes\t%s\n' \
        "$name" "$rss" "$name" "$pss" "$name" "$procs" >>"$results/pools.tsv"
done
printf 'pools_beside\t8\n' >>"$results/pools.tsv"

for round in $(seq "$rounds"); do
    for name in alone beside; do
        p=$port
        [ "$name" = alone ] || p=$((port + 1))
        wrk -t1 -c32 -d"${seconds}s" --latency "http://127.0.0.1:$p/hello" \
            >"$results/pools_wrk_${name}_r$round.txt" 2>&1 || true
    done
done
