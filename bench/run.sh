#!/usr/bin/env bash
# `make bench`: fcgi-rs against nginx's own ceiling, against the floor (the least a FastCGI
# responder can do) and against its peers, PHP-FPM and C libfcgi; FastCGI programs (php-cgi,
# the libfcgi program) run by fcgi-rs against the same under PHP-FPM and spawn-fcgi; how it
# scales, what an idle connection costs it; and one axum app served three ways. All measured in one run on this
# machine, and written to the last section of docs/BENCHMARKS.md ("## make bench: ..."; the
# sections above it are never touched).
#
# (The criterion micro-benchmarks of the crates are not part of this: `cargo bench`.)
#
# What it does, all on loopback and Unix sockets, everything in one temporary directory:
#  1. installs what is missing (Debian packages: nginx, php-fpm, php-cgi, wrk, libfcgi-dev,
#     spawn-fcgi, gcc, python3), builds `fcgi` and `axum-peers` (release) and compiles bench/hello.c
#     against libfcgi and bench/floor.c (no library);
#  2. starts, for the hello app, one backend per target so that no target leaves another one's
#     workers pinned: fcgi-rs (`fcgi serve --app hello`, default pool) twice, the floor twice
#     (bench/floor.c: one thread, epoll, a canned answer), PHP-FPM twice (pm=static, 4
#     children, opcache on, bench/hello.php) and libfcgi twice (4 processes of bench/hello.c
#     under spawn-fcgi -F 4); for the scaling rounds, fcgi-rs held to 1 core and to 2 cores
#     (`taskset`) and as `--workers 1` and `--workers 2`; for the programs, `fcgi serve --app
#     exec --workers 4` running php-cgi (the same ini as PHP-FPM: none but opcache, with
#     opcache.enable_cgi) and running bench/hello.c, each twice (a connection per request from
#     nginx, and keepalive 32) with `--program-connection kept` (the default) and twice with
#     `per-request`; the axum app of
#     tests/support/axum_app.rs on hyper, on tokio-fastcgi and on fcgi-rs; then one nginx (one worker, nginx/wrapper.conf) with one server block per
#     target, each from the repository's templates: nginx/fcgi-unix.conf (a connection per
#     request) and nginx/fcgi-keepalive.conf (upstream keepalive 32 for fcgi-rs, the floor,
#     PHP-FPM and the FastCGI axum servers, as the template has it; keepalive 4 for libfcgi, so
#     that its 4 processes are not starved), bench/nginx-proxy.conf (HTTP/1.1 upstream
#     keepalive 32, for hyper) and bench/nginx-ceiling.conf (nginx's own `return 200`);
#  3. measures in ROUNDS interleaved rounds (every target once per round, A B C ... A B C ...):
#     wrk -t1 -c32 and -c256 through nginx, then `fcgi bench` straight at the backends (32 kept
#     connections, and a connection per request), then the scaling servers (`fcgi bench -c 32
#     --keep-conn`), then the axum app (wrk -t1 -c32, /hello and /items; wrk -t1 -c200 and
#     -c1000 on /sleep, which awaits a 1 s timer). Around every
#     measurement the backend's CPU time (utime + stime from /proc/PID/stat, summed over its
#     processes, each of which sums its threads) is read, for its CPU per request (and, for
#     fcgi-rs running programs and for PHP-FPM, the server's own: fcgi-rs's master and worker
#     without the programs, PHP-FPM's master);
#  3b. in the same rounds, the CGI gateway against fcgiwrap: `fcgi serve --app cgi` and fcgiwrap
#     (Debian's, 4 workers: `spawn-fcgi -- fcgiwrap -c 4`), each on a Unix socket behind its own
#     server block from nginx/fcgi-cgi.conf, running the same three programs: a trivial shell
#     script, one that writes 10 MiB (`head -c 10485760 /dev/zero`) and one that sleeps 100 ms;
#  3c. whether `fcgi bench` saturates one single-threaded libfcgi process (each pinned to a
#     core of its own);
#  3d. limits, once: 256 kept connections against `fcgi serve --max-threads 4`, and the memory
#     of IDLE_CONNS idle kept connections that have served a request each (bench/idle.py holds
#     them; VmRSS before and after);
#  3e. the programs, once: where fcgi-rs's worker spends its time under php-cgi behind
#     keepalive 32 (`perf record -e cpu-clock -g`, when perf works), its context switches per
#     request; a second location starving (bench/nginx-two-locations.conf: one location kept,
#     one not, on the same PHP-FPM, then on the same fcgi-rs running php-cgi); and fcgi-rs's
#     own memory (master and worker) running 64 processes of bench/hello.c, after a warm-up;
#  3f. a master of 8 pools against a master of one (bench/pools.sh): memory per extra pool, and
#     one pool's throughput beside 7 idle ones;
#  4. reads each backend's peak RSS (VmHWM summed over its processes) and writes the section
#     with bench/report.py: medians, p99, CPU per request, ratios to the ceiling, the floor and
#     the peers, the connections actually served (Little's law), and the issue's goals.
#
# Settings, from the environment: BENCH_SECONDS (each measurement; default 4), ROUNDS (default 3),
# IDLE_CONNS (default 5000), BENCH_PORT (the first port tried for nginx's server blocks and
# hyper; default 18100), CARGO, BENCH_OUT (the file whose last section is rewritten; default
# docs/BENCHMARKS.md). A full run with the defaults takes about 15 minutes on 2 cores;
# BENCH_SECONDS=2 ROUNDS=1 about 3.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

seconds=${BENCH_SECONDS:-4}
rounds=${ROUNDS:-3}
idle_conns=${IDLE_CONNS:-5000}
first_port=${BENCH_PORT:-18100}
cargo=${CARGO:-cargo}
out=${BENCH_OUT:-docs/BENCHMARKS.md}
began=$(date +%s)

# --- 1. What it needs ---------------------------------------------------------------------------
# Only what is missing is installed, by the same script as the tests' packages.
bash "$repo/tests/deps.sh" nginx php-fpm php-cgi wrk libfcgi-dev spawn-fcgi gcc libc6-dev python3 \
    fcgiwrap
nginx=/usr/sbin/nginx
php_fpm=$(ls /usr/sbin/php-fpm* 2>/dev/null | sort | head -1)
python=/usr/bin/python3
php_cgi=/usr/bin/php-cgi
[ -n "$php_fpm" ] || { echo "bench: no /usr/sbin/php-fpm*" >&2; exit 1; }
opcache=$(ls /usr/lib/php/*/opcache.so 2>/dev/null | head -1 || true)

# axum-peers (tests/bin/axum_peers.rs) serves the axum app on hyper, tokio-fastcgi and fcgi-rs.
"$cargo" build --release -p fcgi-cli -p fcgi-tests --bin fcgi --bin axum-peers
# CARGO_TARGET_DIR may be absolute (/work/target) or relative to the repository.
target_dir=${CARGO_TARGET_DIR:-target}
[[ $target_dir == /* ]] || target_dir="$repo/$target_dir"
fcgi="$target_dir/release/fcgi"
axum_peers="$target_dir/release/axum-peers"

dir=$(mktemp -d "${TMPDIR:-/tmp}/fcgi-bench.XXXXXX")
results="$dir/results"
mkdir -p "$results" "$dir/www"
pids=()        # every process started, stopped by PID at the end
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# Stops every process started, by PID (TERM, then KILL after 5 s), and removes the directory.
stop() {
    trap - EXIT INT TERM
    # No job notices ("Terminated") for the processes that die of the signal below.
    set +m
    local pid
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$dir"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Waits up to 10 s for the command "$@" to succeed.
wait_for() {
    for _ in $(seq 200); do
        "$@" && return 0
        sleep 0.05
    done
    echo "bench: timed out waiting for: $*" >&2
    return 1
}
port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

gcc -O2 -o "$dir/hello" bench/hello.c -lfcgi
gcc -O2 -o "$dir/floor" bench/floor.c
cp bench/hello.php "$dir/www/hello.php"
script="$dir/www/hello.php"

# --- 2. The backends --------------------------------------------------------------------------
# Job control: each background process in a process group of its own, so that Ctrl-C reaches
# this script alone, which then stops them by PID.
set -m

declare -A backend_pids   # target -> the PIDs of its processes (for RSS)

start_fcgi() { # NAME [fcgi serve OPTIONS...]
    local name=$1
    shift
    "$fcgi" serve --app hello --listen "unix:$dir/$name.sock" --log-level warning "$@" \
        >>"$dir/$name.log" 2>&1 &
    pids+=($!)
    backend_pids[$name]=$!
    wait_for test -S "$dir/$name.sock"
}

# fcgi-rs held to CPUS (taskset's list: 0, or 0,1), every thread it starts included.
start_fcgi_pinned() { # NAME CPUS
    taskset -c "$2" "$fcgi" serve --app hello --listen "unix:$dir/$1.sock" --log-level warning \
        >>"$dir/$1.log" 2>&1 &
    pids+=($!)
    backend_pids[$1]=$!
    wait_for test -S "$dir/$1.sock"
}

start_floor() { # NAME
    "$dir/floor" "$dir/$1.sock" >>"$dir/$1.log" 2>&1 &
    pids+=($!)
    backend_pids[$1]=$!
    wait_for test -S "$dir/$1.sock"
}

# The axum app: MODE is hyper (on 127.0.0.1:PORT), tokio-fastcgi or fcgi-rs (on NAME.sock).
start_axum() { # NAME MODE [PORT]
    local listen="unix:$dir/$1.sock"
    [ "$2" != hyper ] || listen="tcp:127.0.0.1:$3"
    "$axum_peers" "$2" --listen "$listen" >>"$dir/$1.log" 2>&1 &
    pids+=($!)
    backend_pids[$1]=$!
    if [ "$2" = hyper ]; then
        wait_for port_taken "$3"
    else
        wait_for test -S "$dir/$1.sock"
    fi
}

start_php() { # NAME
    local conf="$dir/$1.conf"
    cat >"$conf" <<EOF
[global]
error_log = $dir/$1.log
pid = $dir/$1.pid
daemonize = no
[www]
listen = $dir/$1.sock
pm = static
pm.max_children = 4
EOF
    local args=(-n -y "$conf" -F)
    # opcache, as every production PHP has it: the script is compiled once, not per request.
    [ -z "$opcache" ] || args+=(-d "zend_extension=$opcache" -d opcache.enable=1)
    [ "$(id -u)" -ne 0 ] || args+=(-R)
    "$php_fpm" "${args[@]}" >>"$dir/$1.log" 2>&1 &
    pids+=($!)
    backend_pids[$1]=$!
    wait_for test -S "$dir/$1.sock"
}

start_libfcgi() { # NAME COUNT
    spawn-fcgi -s "$dir/$1.sock" -F "$2" -P "$dir/$1.pid" -- "$dir/hello" >>"$dir/$1.log" 2>&1
    local pid
    for pid in $(cat "$dir/$1.pid"); do
        pids+=("$pid")
        backend_pids[$1]+="$pid "
    done
}

start_fcgi fcgi-plain
start_fcgi fcgi-keepalive
start_floor floor-plain
start_floor floor-keepalive
start_php php-plain
start_php php-keepalive
start_libfcgi libfcgi-plain 4
start_libfcgi libfcgi-keepalive 4

# --- FastCGI programs run by fcgi-rs: php-cgi and the libfcgi program ---------------------------
# `fcgi serve --app exec --workers 4`: fcgi-rs (a master and one serving worker) runs 4
# processes of the program, each on a socket of its own, and relays each request to an idle
# one. php-cgi gets what PHP-FPM gets: no php.ini, opcache (and opcache.enable_cgi, which CGI
# needs); and, as PHP-FPM's pm.max_requests = 0, no request limit (php-cgi's own default,
# PHP_FCGI_MAX_REQUESTS=500, would have each process replaced every 500 requests).
php_cgi_args=(-n)
[ -z "$opcache" ] ||
    php_cgi_args+=(-d "zend_extension=$opcache" -d opcache.enable=1 -d opcache.enable_cgi=1)
export PHP_FCGI_MAX_REQUESTS=0
exec_targets=()
start_exec() { # NAME PROGRAM_CONNECTION WORKERS PROGRAM [ARGS...]
    local name=$1 connection=$2 workers=$3
    shift 3
    "$fcgi" serve --app exec --listen "unix:$dir/$name.sock" --workers "$workers" \
        --program-connection "$connection" --pass-env PHP_FCGI_MAX_REQUESTS --log-level info \
        --log-format json -- "$@" >>"$dir/$name.log" 2>&1 &
    pids+=($!)
    backend_pids[$name]=$!
    exec_targets+=("$name")
    wait_for test -S "$dir/$name.sock"
    wait_for programs_up "$name" "$workers"
}
# Whether NAME's worker runs N programs (fcgi-rs's worker is its master's only child, and the
# programs are the worker's children).
programs_up() { # NAME N
    local worker
    worker=$(ps -o pid= --ppid "${backend_pids[$1]}" | head -1 | tr -d ' ')
    [ -n "$worker" ] && [ "$(ps -o pid= --ppid "$worker" | wc -l)" -ge "$2" ]
}
for nginx_mode in plain keepalive; do
    start_exec "exec-php-$nginx_mode" kept 4 "$php_cgi" "${php_cgi_args[@]}"
    start_exec "exec-php-perreq-$nginx_mode" per-request 4 "$php_cgi" "${php_cgi_args[@]}"
    start_exec "exec-libfcgi-$nginx_mode" kept 4 "$dir/hello"
    start_exec "exec-libfcgi-perreq-$nginx_mode" per-request 4 "$dir/hello"
done
# The second location's rows (3e): a PHP-FPM and an fcgi-rs running php-cgi of their own, so
# that no other target's kept connections hold their processes.
start_php starve-php
start_exec starve-exec kept 4 "$php_cgi" "${php_cgi_args[@]}"

# --- Scaling: fcgi-rs on 1 and 2 cores, and as 1 and 2 prefork workers ------------------------
# `fcgi bench` is not pinned: it runs wherever the scheduler puts it, as a web server would. On
# a 2-core machine the 2-core server shares its cores with the bench, and `taskset -c 0,1` is
# no restriction at all.
start_fcgi_pinned fcgi-core1 0
start_fcgi_pinned fcgi-core2 0,1
start_fcgi fcgi-workers1 --workers 1
start_fcgi fcgi-workers2 --workers 2
scaling=(fcgi-core1 fcgi-core2 fcgi-workers1 fcgi-workers2)

# --- The axum app three ways ------------------------------------------------------------------
# The same Router (tests/support/axum_app.rs) on hyper (what an axum user runs today), on
# tokio-fastcgi, and on fcgi-rs through fcgi-http.
start_axum axum-fcgi fcgi-rs
axum_targets=(axum-fcgi)
hyper_port=$first_port
while port_taken "$hyper_port"; do hyper_port=$((hyper_port + 1)); done
start_axum axum-hyper hyper "$hyper_port"
start_axum axum-tokio-fastcgi tokio-fastcgi
axum_targets+=(axum-hyper axum-tokio-fastcgi)
axum_paths=(hello items)
# /sleep awaits a 1 s timer: what is measured is how many requests each server keeps in
# flight, at 200 and at 1,000 connections (req/s is at most the connections).
axum_sleep_conns=(200 1000)

# --- The CGI gateway and fcgiwrap ---------------------------------------------------------------
# The same programs for both, in $dir/www/cgi-bin; nginx sends SCRIPT_FILENAME.
cgi_bin="$dir/www/cgi-bin"
mkdir -p "$cgi_bin"
cat >"$cgi_bin/trivial.sh" <<'EOF'
#!/bin/sh
printf 'Content-Type: text/plain\n\n'
echo 'Hello, world!'
EOF
cat >"$cgi_bin/big.sh" <<'EOF'
#!/bin/sh
printf 'Content-Type: application/octet-stream\n\n'
exec head -c 10485760 /dev/zero
EOF
cat >"$cgi_bin/slow.sh" <<'EOF'
#!/bin/sh
sleep 0.1
printf 'Content-Type: text/plain\n\nslept\n'
EOF
chmod 755 "$cgi_bin"/*.sh

"$fcgi" serve --app cgi --listen "unix:$dir/cgi-fcgi.sock" --cgi-root "$cgi_bin" \
    --log-level warning >>"$dir/cgi-fcgi.log" 2>&1 &
pids+=($!)
backend_pids[cgi-fcgi]=$!
wait_for test -S "$dir/cgi-fcgi.sock"
# fcgiwrap serves one request per process: 4 of them, as many as libfcgi and PHP-FPM get.
spawn-fcgi -s "$dir/cgi-fcgiwrap.sock" -P "$dir/cgi-fcgiwrap.pid" -- /usr/sbin/fcgiwrap -c 4 \
    >>"$dir/cgi-fcgiwrap.log" 2>&1
backend_pids[cgi-fcgiwrap]=$(cat "$dir/cgi-fcgiwrap.pid")
pids+=("${backend_pids[cgi-fcgiwrap]}")
wait_for test -S "$dir/cgi-fcgiwrap.sock"
cgi_targets=(cgi-fcgi cgi-fcgiwrap)
cgi_scripts=(trivial big slow)

# All the processes of a target: PHP-FPM's master and its children, for instance. (In a stat
# line, what follows "(comm) " starts at field 3: the parent's PID is its second field.)
processes_of() { # TARGET
    local pid all=()
    for pid in ${backend_pids[$1]}; do
        all+=("$pid")
        # shellcheck disable=SC2207
        all+=($(cat /proc/[0-9]*/stat 2>/dev/null |
            awk -v parent="$pid" '{ pid = $1; sub(/^.*\) /, ""); if ($2 == parent) print pid }'))
    done
    echo "${all[@]}"
}

# --- nginx ------------------------------------------------------------------------------------
targets=(ceiling fcgi-plain fcgi-keepalive floor-plain floor-keepalive php-plain php-keepalive
    libfcgi-plain libfcgi-keepalive)
# The programs' targets through nginx, measured in the same rounds (all but starve-exec).
for target in "${exec_targets[@]}"; do
    [ "$target" = starve-exec ] || targets+=("$target")
done
starve_targets=(starve-php starve-exec)
prefix="$dir/nginx"
mkdir -p "$prefix/conf"
# The system's CGI params, and SCRIPT_FILENAME as Debian's fastcgi.conf sets it: PHP-FPM needs
# it, fcgi-rs and libfcgi ignore it.
cp /etc/nginx/fastcgi_params "$prefix/conf/fastcgi_params"
echo 'fastcgi_param  SCRIPT_FILENAME    $document_root$fastcgi_script_name;' \
    >>"$prefix/conf/fastcgi_params"
user_directive=""
[ "$(id -u)" -ne 0 ] || user_directive="user root;"

declare -A port
next=$((hyper_port + 1))
site="$prefix/conf/site.conf"
: >"$site"
for target in "${targets[@]}" "${axum_targets[@]}"; do
    while port_taken "$next"; do next=$((next + 1)); done
    port[$target]=$next
    next=$((next + 1))
    case $target in
        ceiling) template=bench/nginx-ceiling.conf ;;
        axum-hyper) template=bench/nginx-proxy.conf ;;
        *-plain) template=nginx/fcgi-unix.conf ;;
        *-keepalive | axum-*) template=nginx/fcgi-keepalive.conf ;;
    esac
    keepalive=32
    [ "$target" != libfcgi-keepalive ] || keepalive=4
    # One upstream block per keepalive target, each under its own name.
    sed -e "s|@LISTEN@|127.0.0.1:${port[$target]}|g" \
        -e "s|@FCGI_SOCKET@|$dir/$target.sock|g" \
        -e "s|@FCGI_ADDR@|unix:$dir/$target.sock|g" \
        -e "s|@HTTP_ADDR@|127.0.0.1:$hyper_port|g" \
        -e "s|fcgi_rs_keepalive|${target//-/_}|g" \
        -e "s|http_keepalive|${target//-/_}|g" \
        -e "s|keepalive 32;|keepalive $keepalive;|" \
        "$template" >>"$site"
done
for target in "${cgi_targets[@]}"; do
    while port_taken "$next"; do next=$((next + 1)); done
    port[$target]=$next
    next=$((next + 1))
    sed -e "s|@LISTEN@|127.0.0.1:${port[$target]}|g" -e "s|@FCGI_SOCKET@|$dir/$target.sock|g" \
        -e "s|@DOCUMENT_ROOT@|$dir/www|g" nginx/fcgi-cgi.conf >>"$site"
done
for target in "${starve_targets[@]}"; do
    while port_taken "$next"; do next=$((next + 1)); done
    port[$target]=$next
    next=$((next + 1))
    sed -e "s|@LISTEN@|127.0.0.1:${port[$target]}|g" -e "s|@FCGI_SOCKET@|$dir/$target.sock|g" \
        -e "s|@UPSTREAM@|${target//-/_}|g" bench/nginx-two-locations.conf >>"$site"
done
# wrapper.conf as the tests use it, but: no access log (the same saving for every target;
# nginx's logging would otherwise be a large share of the ceiling), a document root for
# SCRIPT_FILENAME, and room for the axum /sleep rows at -c 1000 (1,000 client and as many
# upstream connections, besides the other server blocks' idle ones: more than the wrapper's
# 2048 worker_connections leave).
sed -e "s|@PREFIX@|$prefix|g" -e "s|@SITE@|$site|g" \
    -e "s|@USER_DIRECTIVE@|$user_directive|g" \
    -e "s|^@HTTP_EXTRA@\$|    access_log off;\n    root $dir/www;|" -e "s|@HTTP_EXTRA@||g" \
    -e "s|worker_connections 2048;|worker_connections 4096;|" \
    nginx/wrapper.conf >"$prefix/conf/nginx.conf"
if grep -o '@[A-Z0-9_]*@' "$prefix/conf/nginx.conf" "$site" >&2; then
    echo "bench: a placeholder is left unfilled" >&2
    exit 1
fi
"$nginx" -p "$prefix" -c "$prefix/conf/nginx.conf" -e "$prefix/error.log" &
nginx_pid=$!
pids+=("$nginx_pid")
nginx_up() { kill -0 "$nginx_pid" 2>/dev/null && port_taken "${port[libfcgi-keepalive]}"; }
if ! wait_for nginx_up; then
    cat "$prefix/error.log" >&2
    exit 1
fi

# Every target answers "Hello, world!" before anything is measured.
http_get() { # PORT [PATH]
    exec 3<>"/dev/tcp/127.0.0.1/$1"
    printf 'GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n' "${2:-/hello.php}" >&3
    cat <&3
    exec 3<&-
}
for target in "${targets[@]}" "${axum_targets[@]}"; do
    reply=$(http_get "${port[$target]}" "$([[ $target != axum-* ]] || echo /hello)")
    if [[ $reply != "HTTP/1.1 200"*"Hello, world!" ]]; then
        echo "bench: $target does not answer as it should:" >&2
        printf '%s\n' "$reply" >&2
        cat "$prefix/error.log" >&2
        exit 1
    fi
done
for target in "${axum_targets[@]}"; do
    reply=$(http_get "${port[$target]}" /items)
    if [[ $reply != "HTTP/1.1 200"*"application/json"*'"name":"cheese"'* ]]; then
        echo "bench: $target does not answer /items as it should:" >&2
        printf '%s\n' "$reply" >&2
        exit 1
    fi
done
for target in "${scaling[@]}"; do
    "$fcgi" request --connect "unix:$dir/$target.sock" /hello >/dev/null
done
for target in "${cgi_targets[@]}"; do
    exec 3<>"/dev/tcp/127.0.0.1/${port[$target]}"
    printf 'GET /cgi-bin/trivial.sh HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
    reply=$(cat <&3)
    exec 3<&-
    if [[ $reply != "HTTP/1.1 200"*"Hello, world!"* ]]; then
        echo "bench: $target does not run the CGI script as it should:" >&2
        printf '%s\n' "$reply" >&2
        cat "$prefix/error.log" "$dir/$target.log" >&2
        exit 1
    fi
done
for target in "${starve_targets[@]}"; do
    for path in /hello.php /second.php; do
        reply=$(http_get "${port[$target]}" "$path")
        if [[ $reply != "HTTP/1.1 200"*"Hello, world!" ]]; then
            echo "bench: $target does not answer $path as it should:" >&2
            printf '%s\n' "$reply" >&2
            cat "$prefix/error.log" >&2
            exit 1
        fi
    done
done
# Whether opcache really runs, in PHP-FPM and in php-cgi: asked of each through nginx. The
# comparison holds only with the same on both sides.
cat >"$dir/www/opcache.php" <<'EOF'
<?php
$status = function_exists('opcache_get_status') ? opcache_get_status(false) : false;
echo ($status && $status['opcache_enabled']) ? 'opcache on' : 'opcache off';
EOF
opcache_of() { # TARGET
    http_get "${port[$1]}" /opcache.php | grep -o 'opcache o[nf]*' || echo "no answer"
}
opcache_fpm=$(opcache_of php-plain)
opcache_cgi=$(opcache_of exec-php-plain)
echo "bench: PHP-FPM: $opcache_fpm; php-cgi under fcgi-rs: $opcache_cgi"
if [ "$opcache_fpm" != "$opcache_cgi" ]; then
    echo "bench: opcache differs between PHP-FPM and php-cgi: no fair comparison" >&2
    exit 1
fi
# fcgiwrap's workers, now that they exist, so that they are stopped too.
for pid in $(processes_of cgi-fcgiwrap); do
    [ "$pid" = "${backend_pids[cgi-fcgiwrap]}" ] || pids+=("$pid")
done
backends=(fcgi floor php libfcgi)

# Every process of every target, now that PHP-FPM's children and the prefork workers exist:
# the CPU time of a target is summed over these (a process's /proc/PID/stat sums its threads).
declare -A procs
backend_pids[nginx]=$nginx_pid
for target in "${!backend_pids[@]}"; do
    procs[$target]=$(processes_of "$target")
done
# A target running programs: every process under its master (the master, the worker, the
# programs), listed afresh at each reading (fcgi-rs replaces programs: see below), and, as
# TARGET/own, fcgi-rs's own (the master and its worker: processes_of stops at the children).
# For PHP-FPM, its own is its master.
descendants_of() { # PID
    ps -e -o pid=,ppid= | awk -v root="$1" '
        { parent[$1] = $2 }
        END {
            keep[root] = 1
            do {
                added = 0
                for (p in parent) if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; added = 1 }
            } while (added)
            for (p in keep) print p
        }' | tr '\n' ' '
}
declare -A exec_root
for target in "${exec_targets[@]}"; do
    procs[$target/own]=${procs[$target]}
    exec_root[$target]=${backend_pids[$target]}
done
for target in php-plain php-keepalive; do
    procs[$target/own]=${backend_pids[$target]}
done
# The floor is all its own (for its context switches beside fcgi-rs's).
for target in floor-plain floor-keepalive; do
    procs[$target/own]=${procs[$target]}
done
ticks=$(getconf CLK_TCK)
# utime + stime of TARGET's processes, in clock ticks (what follows "(comm) " in the stat line
# starts at field 3, so utime and stime, fields 14 and 15, are its 12th and 13th). For a target
# running programs, of every process under it now, with cutime + cstime (fields 16 and 17): a
# program that exited and was reaped left its time in its parent's, so that the difference of
# two readings counts the programs replaced between them too.
cpu_ticks() { # TARGET
    local files=() pid list=${procs[$1]:-} children=0
    if [ -n "${exec_root[$1]:-}" ]; then
        list=$(descendants_of "${exec_root[$1]}")
        children=1
    fi
    for pid in $list; do files+=("/proc/$pid/stat"); done
    [ ${#files[@]} -gt 0 ] || { echo 0; return; }
    # cat skips a process gone since the list was made (awk would stop at it).
    { cat "${files[@]}" 2>/dev/null || true; } |
        awk -v children="$children" '{ sub(/^.*\) /, ""); t += $12 + $13; if (children) t += $14 + $15 }
            END { print t + 0 }'
}
# Runs CMD... with its output to OUT, and writes the CPU ticks TARGET's processes used meanwhile
# next to it (OUT with the extension .cpu), the server's own where it has one (.own-cpu: see
# TARGET/own above), and nginx's (.nginx-cpu: the axum table compares what proxy_pass and
# fastcgi_pass cost nginx). A failed measurement leaves what it wrote; the report skips what
# it cannot read.
measure() { # TARGET OUT CMD...
    local target=$1 out=$2 before after nginx_before nginx_after own_before="" own_after
    shift 2
    before=$(cpu_ticks "$target")
    [ -z "${procs[$target/own]:-}" ] || own_before=$(cpu_ticks "$target/own")
    nginx_before=$(cpu_ticks nginx)
    "$@" >"$out" || true
    after=$(cpu_ticks "$target")
    [ -z "$own_before" ] || own_after=$(cpu_ticks "$target/own")
    nginx_after=$(cpu_ticks nginx)
    echo $((after - before)) >"${out%.*}.cpu"
    [ -z "$own_before" ] || echo $((own_after - own_before)) >"${out%.*}.own-cpu"
    echo $((nginx_after - nginx_before)) >"${out%.*}.nginx-cpu"
}
# The context switches of TARGET's processes (summed over their threads: a thread that exits
# meanwhile takes its count with it, so this is a floor); with ", own", of TARGET/own.
ctxt_switches() { # TARGET
    local files=() pid
    for pid in ${procs[$1]:-}; do files+=(/proc/"$pid"/task/*/status); done
    [ ${#files[@]} -gt 0 ] || { echo 0; return; }
    # cat skips a thread gone since the glob (awk would stop at it).
    { cat "${files[@]}" 2>/dev/null || true; } |
        awk '/^(non)?voluntary_ctxt_switches:/ { n += $2 } END { print n + 0 }'
}

# --- 3. Rounds --------------------------------------------------------------------------------
echo "bench: $rounds rounds of ${seconds} s runs: ${#targets[@]} targets through nginx at -c32 and" \
    "-c256, ${#backends[@]} backends directly, twice, ${#scaling[@]} scaling servers and" \
    "${#axum_targets[@]} axum servers"
wrk_cmd() { # CONNS PORT [PATH]
    echo wrk -t1 -c"$1" -d"${seconds}s" --latency "http://127.0.0.1:$2${3:-/hello.php}"
}
# The axum app's /sleep: requests take 1 s, so wrk's default 2 s timeout would count a
# request that queued for a second as failed; 10 s leaves a server's queue its say.
sleep_wrk_cmd() { # CONNS PORT
    echo wrk -t1 -c"$1" -d"${seconds}s" --timeout 10s --latency "http://127.0.0.1:$2/sleep"
}
# Modest concurrency for CGI: every request is a process. The 10 MiB responses with fewer
# connections, the sleeping script with more (it is the concurrency that is measured there).
cgi_conns() { case $1 in trivial) echo 8 ;; big) echo 4 ;; slow) echo 32 ;; esac; }
cgi_wrk_cmd() { # SCRIPT PORT
    echo wrk -t1 -c"$(cgi_conns "$1")" -d"${seconds}s" --latency "http://127.0.0.1:$2/cgi-bin/$1.sh"
}
bench_cmd() { # SOCKET MODE
    local mode=()
    [ "$2" = new ] || mode=(--keep-conn)
    echo "$fcgi" bench --connect "unix:$1" -c 32 -d "${seconds}s" "${mode[@]}" --timeout 2 \
        --json --quiet "$script"
}
# The 1-minute load average as each round starts and when they are over: the bench keeps about
# 2 busy (a load generator and a server, or nginx), more means other work shared the cores.
for round in $(seq "$rounds"); do
    cut -d' ' -f1 /proc/loadavg >>"$results/load.txt"
    for conns in 32 256; do
        for target in "${targets[@]}"; do
            printf 'bench: round %s, wrk -c%s, %s\n' "$round" "$conns" "$target"
            # shellcheck disable=SC2046
            switches_before=$(ctxt_switches "$target/own")
            measure "$target" "$results/wrk_${target}_c${conns}_r$round.txt" \
                $(wrk_cmd "$conns" "${port[$target]}")
            [ -z "${procs[$target/own]:-}" ] || echo $(($(ctxt_switches "$target/own") - \
                switches_before)) >"$results/wrk_${target}_c${conns}_r$round.switches"
        done
    done
    for program in "${cgi_scripts[@]}"; do
        for target in "${cgi_targets[@]}"; do
            printf 'bench: round %s, CGI %s, %s\n' "$round" "$program" "$target"
            # shellcheck disable=SC2046
            $(cgi_wrk_cmd "$program" "${port[$target]}") >"$results/cgi_${target}_${program}_r$round.txt"
        done
    done
    for mode in keep new; do
        for backend in "${backends[@]}"; do
            printf 'bench: round %s, fcgi bench (%s), %s\n' "$round" "$mode" "$backend"
            # shellcheck disable=SC2046
            measure "$backend-plain" "$results/direct_${backend}_${mode}_r$round.json" \
                $(bench_cmd "$dir/$backend-plain.sock" "$mode")
        done
    done
    for target in "${scaling[@]}"; do
        printf 'bench: round %s, fcgi bench (keep), %s\n' "$round" "$target"
        # shellcheck disable=SC2046
        measure "$target" "$results/scaling_${target}_r$round.json" \
            $(bench_cmd "$dir/$target.sock" keep)
    done
    for path in "${axum_paths[@]}"; do
        for target in "${axum_targets[@]}"; do
            printf 'bench: round %s, axum /%s, %s\n' "$round" "$path" "$target"
            # shellcheck disable=SC2046
            measure "$target" "$results/axum_${target}_${path}_r$round.txt" \
                $(wrk_cmd 32 "${port[$target]}" "/$path")
        done
    done
    for conns in "${axum_sleep_conns[@]}"; do
        for target in "${axum_targets[@]}"; do
            printf 'bench: round %s, axum /sleep -c%s, %s\n' "$round" "$conns" "$target"
            # shellcheck disable=SC2046
            measure "$target" "$results/axum_${target}_sleep-c${conns}_r$round.txt" \
                $(sleep_wrk_cmd "$conns" "${port[$target]}")
        done
    done
done

cut -d' ' -f1 /proc/loadavg >>"$results/load.txt"

# --- Is fcgi bench the bottleneck? --------------------------------------------------------------
# One single-threaded libfcgi process, fcgi bench pinned to CPU 0, the process to CPU 1 (or to
# CPU 0 too). fcgi bench reports its own CPU use; the process's comes from /proc. A process
# holds a kept connection, so with --keep-conn only -c 1 makes sense for it; without, the
# connections take turns (and libfcgi waits for the client to close each one before the next).
start_libfcgi libfcgi-single 1
single=${backend_pids[libfcgi-single]// /}
procs[libfcgi-single]=$single
saturation() { # NAME SERVER_CPU ARGS... (for fcgi bench)
    local name=$1 before after start end
    taskset -pc "$2" "$single" >/dev/null
    shift 2
    before=$(cpu_ticks libfcgi-single)
    start=$(date +%s.%N)
    if [ "$name" = two ]; then
        taskset -c 0 "$fcgi" bench --connect "unix:$dir/libfcgi-single.sock" -d "${seconds}s" \
            --json --quiet "$@" /hello >"$results/saturation_two-a.json" &
        local first=$!
        taskset -c 0 "$fcgi" bench --connect "unix:$dir/libfcgi-single.sock" -d "${seconds}s" \
            --json --quiet "$@" /hello >"$results/saturation_two-b.json"
        wait "$first"
    else
        taskset -c 0 "$fcgi" bench --connect "unix:$dir/libfcgi-single.sock" -d "${seconds}s" \
            --json --quiet "$@" /hello >"$results/saturation_$name.json"
    fi
    end=$(date +%s.%N)
    after=$(cpu_ticks libfcgi-single)
    printf '%s\t%s\n' "$name" "$(awk -v a="$after" -v b="$before" -v t="$ticks" -v s="$start" \
        -v e="$end" 'BEGIN { printf "%.0f", 100 * (a - b) / t / (e - s) }')" >>"$results/saturation.tsv"
}
echo "bench: is fcgi bench the bottleneck? (one libfcgi process)"
saturation keep-c1 1 -c 1 --keep-conn
saturation new-c1 1 -c 1
saturation new-c4 1 -c 4
saturation new-c16 1 -c 16
saturation two 1 -c 2
saturation same-keep-c1 0 -c 1 --keep-conn
saturation same-new-c4 0 -c 4

# --- Limits: a small pool under many kept connections; idle connections' memory ---------------
# 256 kept connections, each with a request in flight, against a pool of 4 threads: every one
# must be served (no timeout within 2 s), not only the 4 that a thread-per-connection server
# would hold.
echo "bench: 256 kept connections against --max-threads 4"
start_fcgi fcgi-threads4 --max-threads 4
"$fcgi" bench --connect "unix:$dir/fcgi-threads4.sock" -c 256 -d "${seconds}s" --keep-conn \
    --timeout 2 --json --quiet /hello >"$results/limits_threads4.json" || true

# IDLE_CONNS kept connections that have served one request each and then sit idle, held by
# bench/idle.py, against a fresh `fcgi serve --app hello` warmed up first (so that its pool and
# buffers exist before the "before"): the growth of its VmRSS per connection.
echo "bench: $idle_conns idle kept connections"
start_fcgi fcgi-idle
idle=${backend_pids[fcgi-idle]}
"$fcgi" bench --connect "unix:$dir/fcgi-idle.sock" -c 32 -n 20000 --keep-conn --timeout 2 \
    --quiet /hello >/dev/null
sleep 1
status_of() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$idle/status"; }
rss_before=$(status_of VmRSS)
threads_before=$(status_of Threads)
mkfifo "$dir/idle.fifo"
"$python" bench/idle.py "$dir/fcgi-idle.sock" "$idle_conns" <"$dir/idle.fifo" >"$dir/idle.out" \
    2>>"$dir/idle.log" &
idle_client=$!
pids+=("$idle_client")
exec 4>"$dir/idle.fifo"
for _ in $(seq 1200); do # up to 60 s to open and serve them all
    grep -q '^ready' "$dir/idle.out" 2>/dev/null && break
    kill -0 "$idle_client" 2>/dev/null || break
    sleep 0.05
done
sleep 1
if grep -q '^ready' "$dir/idle.out"; then
    printf 'conns\t%s\nrss_before\t%s\nrss_after\t%s\nthreads_before\t%s\nthreads_after\t%s\n' \
        "$idle_conns" "$rss_before" "$(status_of VmRSS)" "$threads_before" "$(status_of Threads)" \
        >"$results/idle.tsv"
else
    echo "bench: the idle connections were not all served:" >&2
    cat "$dir/idle.log" >&2
fi
exec 4>&-
wait "$idle_client" 2>/dev/null || true

# --- The programs: where fcgi-rs's time goes, a second location, 64 processes ---------------
# fcgi-rs's worker running php-cgi behind keepalive 32 (exec-php-keepalive), profiled during
# one more `wrk -c32` (not one of the rounds: perf slows what it watches) with perf's software
# clock (this VM has no hardware counters), when perf works here.
profiled=exec-php-keepalive
worker=$(ps -o pid= --ppid "${backend_pids[$profiled]}" | head -1 | tr -d ' ')
perf_ok=no
if command -v perf >/dev/null &&
    perf record -e cpu-clock -o "$dir/perf-check.data" -- true >/dev/null 2>&1; then
    perf_ok=yes
fi
echo "bench: profiling fcgi-rs's worker under php-cgi (perf works: $perf_ok)"
wrk -t1 -c32 -d"$((seconds + 1))s" --latency "http://127.0.0.1:${port[$profiled]}/hello.php" \
    >"$results/profile_wrk.txt" &
profile_wrk=$!
if [ "$perf_ok" = yes ]; then
    sleep 0.5
    perf record -e cpu-clock -F 999 -g -p "$worker" -o "$dir/perf.data" -- sleep "$seconds" \
        >/dev/null 2>&1 || perf_ok=no
fi
wait "$profile_wrk" || true
if [ "$perf_ok" = yes ]; then
    # Each function's own samples; with its callees (call chains from frame pointers, so
    # approximate); and by thread (the pool's threads, the reactor, the supervisor).
    perf report -i "$dir/perf.data" --stdio --no-children --sort symbol -g none \
        --percent-limit 0.5 >"$results/profile_self.txt" 2>/dev/null || true
    perf report -i "$dir/perf.data" --stdio --children --sort symbol -g none \
        --percent-limit 1 >"$results/profile_children.txt" 2>/dev/null || true
    perf report -i "$dir/perf.data" --stdio --no-children --sort comm -g none \
        >"$results/profile_comm.txt" 2>/dev/null || true
fi

# A second location starving: `wrk -c32` on the first location (kept connections) and, at the
# same time, `wrk -c1` on the second (a connection per request), both to one backend: PHP-FPM,
# then fcgi-rs running php-cgi, each with 4 processes (bench/nginx-two-locations.conf).
for target in "${starve_targets[@]}"; do
    echo "bench: a second location, $target"
    wrk -t1 -c32 -d"${seconds}s" --latency "http://127.0.0.1:${port[$target]}/hello.php" \
        >"$results/starve_${target}_first.txt" &
    first=$!
    wrk -t1 -c1 -d"${seconds}s" --latency "http://127.0.0.1:${port[$target]}/second.php" \
        >"$results/starve_${target}_second.txt" || true
    wait "$first" || true
done

# fcgi-rs's own memory, its master's and its worker's (not the programs'), running 64
# processes of bench/hello.c, after a warm-up of 256 kept connections (every process and the
# worker's pool threads busy): VmRSS (and VmHWM, and PSS, which shares the pages the two
# processes have in common between them).
echo "bench: fcgi-rs running 64 processes of the libfcgi program"
start_exec exec64 kept 64 "$dir/hello"
"$fcgi" bench --connect "unix:$dir/exec64.sock" -c 256 -d "${seconds}s" --keep-conn --timeout 2 \
    --json --quiet /hello >"$results/exec64_warmup.json" || true
sleep 1
{
    for pid in $(processes_of exec64); do
        role=worker
        [ "$pid" != "${backend_pids[exec64]}" ] || role=master
        printf '%s\t%s\t%s\t%s\t%s\n' "$role" \
            "$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")" \
            "$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")" \
            "$(awk '/^Pss:/ { print $2 }' "/proc/$pid/smaps_rollup" 2>/dev/null || echo 0)" \
            "$(awk '/^Threads:/ { print $2 }' "/proc/$pid/status")"
    done
    worker=$(ps -o pid= --ppid "${backend_pids[exec64]}" | head -1 | tr -d ' ')
    printf 'programs\t%s\n' "$(ps -o pid= --ppid "$worker" | wc -l)"
} >"$results/exec64.tsv"

# A master of 8 pools against a master of one: memory per pool, and one pool's throughput beside
# 7 idle ones (bench/pools.sh), on two free ports of its own.
pools_port=$((first_port + 500))
while port_taken "$pools_port" || port_taken "$((pools_port + 1))"; do
    pools_port=$((pools_port + 2))
done
echo "bench: a master of 8 pools"
BENCH_SECONDS=$seconds ROUNDS=$rounds bash bench/pools.sh "$dir" "$results" "$fcgi" "$nginx" \
    "$pools_port"

# --- 4. Memory, and the report ----------------------------------------------------------------
for target in "${targets[@]}" "${cgi_targets[@]}" "${scaling[@]}" "${axum_targets[@]}"; do
    [ "$target" != ceiling ] || continue
    kib=0
    for pid in $(processes_of "$target"); do
        hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        kib=$((kib + ${hwm:-0}))
    done
    printf '%s\t%s\t%s\n' "$target" "$kib" "$(processes_of "$target" | wc -w)" >>"$results/rss.tsv"
done
# What fcgi-rs's log says of each target's programs over the whole run: how many it started,
# and why it stopped those it stopped (`program-stopped`'s reason).
"$python" - "$dir" "${exec_targets[@]}" >"$results/programs.tsv" <<'EOF'
import json, sys
from collections import Counter
for target in sys.argv[2:]:
    events, reasons = Counter(), Counter()
    with open(f"{sys.argv[1]}/{target}.log", errors="replace") as log:
        for line in log:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            events[entry.get("event")] += 1
            if entry.get("event") == "program-stopped":
                reasons[entry.get("reason")] += 1
    print(target, events["program-started"], events["program-exited"],
          ",".join(f"{r}:{n}" for r, n in sorted(reasons.items())), sep="\t")
EOF
# fcgi-rs with its programs (the rows above are its master and worker alone).
for target in "${exec_targets[@]}"; do
    kib=0
    all=$(descendants_of "${backend_pids[$target]}")
    for pid in $all; do
        hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        kib=$((kib + ${hwm:-0}))
    done
    printf '%s+programs\t%s\t%s\n' "$target" "$kib" "$(echo "$all" | wc -w)" >>"$results/rss.tsv"
done

{
    echo "nproc=$(nproc)"
    echo "cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)"
    echo "kernel=$(uname -r)"
    echo "nginx=$("$nginx" -v 2>&1 | sed 's/^nginx version: //')"
    echo "php=$("$php_fpm" -n -v | head -1)"
    echo "opcache=${opcache:+on}"
    echo "opcache_fpm=$opcache_fpm"
    echo "opcache_cgi=$opcache_cgi"
    echo "php_cgi=$("$php_cgi" -n -v | head -1)"
    echo "exec_php=fcgi serve --app exec --workers 4 --pass-env PHP_FCGI_MAX_REQUESTS -- $php_cgi ${php_cgi_args[*]//$opcache/opcache.so}"
    echo "exec_libfcgi=fcgi serve --app exec --workers 4 -- ./hello"
    echo "perf=$perf_ok"
    echo "profiled=$profiled"
    echo "libfcgi=$(dpkg-query -W -f='${Version}' libfcgi-dev 2>/dev/null)"
    echo "spawn_fcgi=$(spawn-fcgi -v | head -1 | awk '{print $2}')"
    echo "fcgiwrap=$(dpkg-query -W -f='${Version}' fcgiwrap 2>/dev/null)"
    for program in "${cgi_scripts[@]}"; do
        echo "cgi_wrk_$program=$(cgi_wrk_cmd "$program" PORT)"
    done
    echo "wrk=$(wrk -v 2>&1 | head -1 | awk '{print $2}')"
    echo "rustc=$(rustc -V)"
    echo "fcgi=$("$fcgi" --version)"
    echo "commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with changes)')"
    echo "seconds=$seconds"
    echo "rounds=$rounds"
    echo "date=$(date -u +%Y-%m-%d)"
    echo "took=$(($(date +%s) - began))"
    echo "clk_tck=$ticks"
    echo "idle_conns=$idle_conns"
    echo "axum_wrk=$(wrk_cmd 32 PORT /hello)"
    for conns in "${axum_sleep_conns[@]}"; do
        echo "axum_sleep_wrk_$conns=$(sleep_wrk_cmd "$conns" PORT)"
    done
    echo "tokio=$(awk '/^name = "tokio"$/ { getline; gsub(/"/, "", $3); print $3 }' Cargo.lock)"
    echo "axum=$(awk '/^name = "axum"$/ { getline; gsub(/"/, "", $3); print $3 }' Cargo.lock)"
    echo "hyper=$(awk '/^name = "hyper"$/ { getline; gsub(/"/, "", $3); print $3 }' Cargo.lock)"
    echo "tokio_fastcgi=$(awk '/^name = "tokio-fastcgi"$/ { getline; gsub(/"/, "", $3); print $3 }' Cargo.lock)"
    echo "wrk_cmd=$(wrk_cmd 32 PORT)"
    echo "bench_keep=$(bench_cmd SOCKET keep | sed -e "s|$fcgi|fcgi|" -e "s|$script|/path/to/hello.php|")"
    echo "bench_new=$(bench_cmd SOCKET new | sed -e "s|$fcgi|fcgi|" -e "s|$script|/path/to/hello.php|")"
} >"$results/machine.env"

"$python" bench/report.py "$results" "$out"
echo "bench: done in $(($(date +%s) - began)) s; the results are in $out"
