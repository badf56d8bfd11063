#!/usr/bin/env bash
# `make bench`: fcgi-rs against nginx's own ceiling and against its peers, PHP-FPM and C libfcgi,
# measured in one run on this machine, and written to the last section of docs/BENCHMARKS.md
# ("## make bench: ..."; the sections above it are never touched).
#
# (The criterion micro-benchmarks of the crates are not part of this: `cargo bench`.)
#
# What it does, all on loopback and Unix sockets, everything in one temporary directory:
#  1. installs what is missing (Debian packages: nginx, php-fpm, wrk, libfcgi-dev, spawn-fcgi,
#     gcc, python3), builds `fcgi` (release) and compiles bench/hello.c against libfcgi;
#  2. starts, for the hello app, one backend per target so that no target leaves another one's
#     workers pinned: fcgi-rs (`fcgi serve --app hello`, default pool) twice, PHP-FPM twice
#     (pm=static, 4 children, opcache on, bench/hello.php) and libfcgi twice (4 processes of
#     bench/hello.c under spawn-fcgi -F 4); then one nginx (one worker, nginx/wrapper.conf) with
#     one server block per target, each from the repository's templates: nginx/fcgi-unix.conf
#     (a connection per request) and nginx/fcgi-keepalive.conf (upstream keepalive 32 for
#     fcgi-rs and PHP-FPM, as the template has it; keepalive 4 for libfcgi, so that its 4
#     processes are not starved), and bench/nginx-ceiling.conf (nginx's own `return 200`);
#  3. measures in ROUNDS interleaved rounds (every target once per round, A B C ... A B C ...):
#     wrk -t1 -c32 and -c256 through nginx, then `fcgi bench` straight at the backends (32 kept
#     connections, and a connection per request); then whether `fcgi bench` saturates one
#     single-threaded libfcgi process (each pinned to a core of its own);
#  3b. in the same rounds, the CGI gateway against fcgiwrap: `fcgi serve --app cgi` and fcgiwrap
#     (Debian's, 4 workers: `spawn-fcgi -- fcgiwrap -c 4`), each on a Unix socket behind its own
#     server block from nginx/fcgi-cgi.conf, running the same three programs: a trivial shell
#     script, one that writes 10 MiB (`head -c 10485760 /dev/zero`) and one that sleeps 100 ms;
#  4. reads each backend's peak RSS (VmHWM summed over its processes) and writes the section
#     with bench/report.py: medians, p99, ratios to the ceiling and to the peers, and the
#     connections actually served (Little's law: requests/s x mean latency).
#
# Settings, from the environment: BENCH_SECONDS (each measurement; default 5), ROUNDS (default 3),
# BENCH_PORT (the first port tried for nginx's server blocks; default 18100), CARGO,
# BENCH_OUT (the file whose last section is rewritten; default docs/BENCHMARKS.md).
# A full run with the defaults takes about 8 minutes on 2 cores; BENCH_SECONDS=2 ROUNDS=1 about 2.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

seconds=${BENCH_SECONDS:-5}
rounds=${ROUNDS:-3}
first_port=${BENCH_PORT:-18100}
cargo=${CARGO:-cargo}
out=${BENCH_OUT:-docs/BENCHMARKS.md}
began=$(date +%s)

# --- 1. What it needs ---------------------------------------------------------------------------
# Only what is missing is installed, by the same script as the tests' packages.
bash "$repo/tests/deps.sh" nginx php-fpm wrk libfcgi-dev spawn-fcgi gcc libc6-dev python3 fcgiwrap
nginx=/usr/sbin/nginx
php_fpm=$(ls /usr/sbin/php-fpm* 2>/dev/null | sort | head -1)
python=/usr/bin/python3
[ -n "$php_fpm" ] || { echo "bench: no /usr/sbin/php-fpm*" >&2; exit 1; }
opcache=$(ls /usr/lib/php/*/opcache.so 2>/dev/null | head -1 || true)

"$cargo" build --release -p fcgi-cli
fcgi="$repo/${CARGO_TARGET_DIR:-target}/release/fcgi"

dir=$(mktemp -d "${TMPDIR:-/tmp}/fcgi-bench.XXXXXX")
results="$dir/results"
mkdir -p "$results" "$dir/www"
pids=()        # every process started, stopped by PID at the end
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# Stops every process started, by PID (TERM, then KILL after 5 s), and removes the directory.
stop() {
    trap - EXIT INT TERM
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
cp bench/hello.php "$dir/www/hello.php"
script="$dir/www/hello.php"

# --- 2. The backends --------------------------------------------------------------------------
# Job control: each background process in a process group of its own, so that Ctrl-C reaches
# this script alone, which then stops them by PID.
set -m

declare -A backend_pids   # target -> the PIDs of its processes (for RSS)

start_fcgi() { # NAME
    "$fcgi" serve --app hello --listen "unix:$dir/$1.sock" --log-level warning \
        >>"$dir/$1.log" 2>&1 &
    pids+=($!)
    backend_pids[$1]=$!
    wait_for test -S "$dir/$1.sock"
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
start_php php-plain
start_php php-keepalive
start_libfcgi libfcgi-plain 4
start_libfcgi libfcgi-keepalive 4

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

# All the processes of a target: PHP-FPM's master and its children, for instance.
processes_of() { # TARGET
    local pid all=()
    for pid in ${backend_pids[$1]}; do
        all+=("$pid")
        for child in /proc/[0-9]*/stat; do
            [ "$(awk '{print $4}' "$child" 2>/dev/null)" = "$pid" ] || continue
            child=${child#/proc/}
            all+=("${child%/stat}")
        done
    done
    echo "${all[@]}"
}

# --- nginx ------------------------------------------------------------------------------------
targets=(ceiling fcgi-plain fcgi-keepalive php-plain php-keepalive libfcgi-plain libfcgi-keepalive)
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
next=$first_port
site="$prefix/conf/site.conf"
: >"$site"
for target in "${targets[@]}"; do
    while port_taken "$next"; do next=$((next + 1)); done
    port[$target]=$next
    next=$((next + 1))
    backend=${target%-*}
    case $target in
        ceiling) template=bench/nginx-ceiling.conf ;;
        *-plain) template=nginx/fcgi-unix.conf ;;
        *-keepalive) template=nginx/fcgi-keepalive.conf ;;
    esac
    keepalive=32
    [ "$backend" != libfcgi ] || keepalive=4
    # One upstream block per keepalive target, each under its own name.
    sed -e "s|@LISTEN@|127.0.0.1:${port[$target]}|g" \
        -e "s|@FCGI_SOCKET@|$dir/$target.sock|g" \
        -e "s|@FCGI_ADDR@|unix:$dir/$target.sock|g" \
        -e "s|fcgi_rs_keepalive|${backend}_keepalive|g" \
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
# wrapper.conf as the tests use it, but: no access log (the same saving for every target;
# nginx's logging would otherwise be a large share of the ceiling), a document root for
# SCRIPT_FILENAME, and room for -c 256 (256 client and up to 256 upstream connections, more
# than the wrapper's 512 worker_connections).
sed -e "s|@PREFIX@|$prefix|g" -e "s|@SITE@|$site|g" \
    -e "s|@USER_DIRECTIVE@|$user_directive|g" \
    -e "s|^@HTTP_EXTRA@\$|    access_log off;\n    root $dir/www;|" -e "s|@HTTP_EXTRA@||g" \
    -e "s|worker_connections 512;|worker_connections 4096;|" \
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
http_get() { # PORT
    exec 3<>"/dev/tcp/127.0.0.1/$1"
    printf 'GET /hello.php HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
    cat <&3
    exec 3<&-
}
for target in "${targets[@]}"; do
    reply=$(http_get "${port[$target]}")
    if [[ $reply != "HTTP/1.1 200"*"Hello, world!" ]]; then
        echo "bench: $target does not answer as it should:" >&2
        printf '%s\n' "$reply" >&2
        cat "$prefix/error.log" >&2
        exit 1
    fi
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
# fcgiwrap's workers, now that they exist, so that they are stopped too.
for pid in $(processes_of cgi-fcgiwrap); do
    [ "$pid" = "${backend_pids[cgi-fcgiwrap]}" ] || pids+=("$pid")
done
backends=(fcgi php libfcgi)

# --- 3. Rounds --------------------------------------------------------------------------------
echo "bench: $rounds rounds of ${seconds} s runs: ${#targets[@]} targets through nginx at -c32 and" \
    "-c256, then ${#backends[@]} backends directly, twice"
wrk_cmd() { # CONNS PORT
    echo wrk -t1 -c"$1" -d"${seconds}s" --latency "http://127.0.0.1:$2/hello.php"
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
for round in $(seq "$rounds"); do
    for conns in 32 256; do
        for target in "${targets[@]}"; do
            printf 'bench: round %s, wrk -c%s, %s\n' "$round" "$conns" "$target"
            # shellcheck disable=SC2046
            $(wrk_cmd "$conns" "${port[$target]}") >"$results/wrk_${target}_c${conns}_r$round.txt"
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
            $(bench_cmd "$dir/$backend-plain.sock" "$mode") \
                >"$results/direct_${backend}_${mode}_r$round.json" || true
        done
    done
done

# --- Is fcgi bench the bottleneck? --------------------------------------------------------------
# One single-threaded libfcgi process, fcgi bench pinned to CPU 0, the process to CPU 1 (or to
# CPU 0 too). fcgi bench reports its own CPU use; the process's comes from /proc. A process
# holds a kept connection, so with --keep-conn only -c 1 makes sense for it; without, the
# connections take turns (and libfcgi waits for the client to close each one before the next).
start_libfcgi libfcgi-single 1
single=${backend_pids[libfcgi-single]// /}
ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$single/stat"; }
saturation() { # NAME SERVER_CPU ARGS... (for fcgi bench)
    local name=$1 before after start end
    taskset -pc "$2" "$single" >/dev/null
    shift 2
    before=$(cpu_ticks)
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
    after=$(cpu_ticks)
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

# --- 4. Memory, and the report ----------------------------------------------------------------
for target in "${targets[@]}" "${cgi_targets[@]}"; do
    [ "$target" != ceiling ] || continue
    kib=0
    for pid in $(processes_of "$target"); do
        hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        kib=$((kib + ${hwm:-0}))
    done
    printf '%s\t%s\t%s\n' "$target" "$kib" "$(processes_of "$target" | wc -w)" >>"$results/rss.tsv"
done

{
    echo "nproc=$(nproc)"
    echo "cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)"
    echo "kernel=$(uname -r)"
    echo "nginx=$("$nginx" -v 2>&1 | sed 's/^nginx version: //')"
    echo "php=$("$php_fpm" -n -v | head -1)"
    echo "opcache=${opcache:+on}"
    echo "libfcgi=$(dpkg-query -W -f='${Version}' libfcgi-dev 2>/dev/null)"
    echo "spawn_fcgi=$(spawn-fcgi -v | head -1 | awk '{print $2}')"
    echo "fcgiwrap=$(dpkg-query -W -f='${Version}' fcgiwrap 2>/dev/null)"
    for program in "${cgi_scripts[@]}"; do
        echo "cgi_wrk_$program=$(cgi_wrk_cmd "$program" PORT)"
    done
    echo "wrk=$(wrk -v 2>&1 | head -1 | awk '{print $2}')"
    echo "rustc=$(rustc -V)"
    echo "fcgi=$("$fcgi" --version)"
    echo "seconds=$seconds"
    echo "rounds=$rounds"
    echo "date=$(date -u +%Y-%m-%d)"
    echo "took=$(($(date +%s) - began))"
    echo "wrk_cmd=$(wrk_cmd 32 PORT)"
    echo "bench_keep=$(bench_cmd SOCKET keep | sed -e "s|$fcgi|fcgi|" -e "s|$script|/path/to/hello.php|")"
    echo "bench_new=$(bench_cmd SOCKET new | sed -e "s|$fcgi|fcgi|" -e "s|$script|/path/to/hello.php|")"
} >"$results/machine.env"

"$python" bench/report.py "$results" "$out"
echo "bench: done in $(($(date +%s) - began)) s; the results are in $out"
