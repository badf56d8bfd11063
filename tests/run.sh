#!/usr/bin/env bash
# `make run`: builds fcgi-rs (release), starts `fcgi serve --app hello` on a Unix socket in a
# fresh temporary directory and nginx in front of it on a free 127.0.0.1 port, configured from
# nginx/wrapper.conf around nginx/fcgi-unix.conf (the files the tests use too), prints the URL,
# and stays in the foreground until Ctrl-C. Then it stops both by PID and removes the directory.
#
# Settings, from the environment: APP (hello or echo; default hello), PORT (the first port
# tried; default 8080, the next ones up to 100 further when it is taken), CARGO, NGINX (the
# nginx binary; default /usr/sbin/nginx, else nginx on the PATH).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo=${CARGO:-cargo}
app=${APP:-hello}
first_port=${PORT:-8080}
nginx=${NGINX:-/usr/sbin/nginx}
[ -x "$nginx" ] || nginx=$(command -v nginx || true)
if [ -z "$nginx" ]; then
    echo "run: nginx is not installed; run \`make deps\`" >&2
    exit 1
fi
params=/etc/nginx/fastcgi_params
[ -f "$params" ] || { echo "run: $params is missing; run \`make deps\`" >&2; exit 1; }

"$cargo" build --release -p fcgi-cli
fcgi="${CARGO_TARGET_DIR:-target}/release/fcgi"

dir=$(mktemp -d "${TMPDIR:-/tmp}/fcgi-run.XXXXXX")
socket="$dir/fcgi.sock"
prefix="$dir/nginx"
mkdir -p "$prefix/conf"
fcgi_pid=""
nginx_pid=""

# Stops whatever was started, by PID: nginx first (no new requests), then fcgi-rs, which
# finishes what it is running (TERM: a graceful stop, bounded by --graceful-timeout below).
stop() {
    trap - EXIT INT TERM
    local pid
    for pid in $nginx_pid $fcgi_pid; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in $nginx_pid $fcgi_pid; do
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "run: process $pid did not stop in 10 s; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$dir"
    echo "run: stopped nginx and fcgi-rs, removed $dir"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Waits up to 10 s for the command "$@" to succeed while process $pid runs; fails otherwise.
wait_for() {
    local pid=$1
    shift
    for _ in $(seq 200); do
        "$@" && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}
port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# nginx writes its pid file once it has bound its port; then it accepts.
nginx_up() { [ -s "$prefix/nginx.pid" ] && port_taken "$1"; }

# Job control: each background process gets a process group of its own, so that Ctrl-C reaches
# this script alone, and the script stops them (by PID, in stop above).
set -m

"$fcgi" serve --app "$app" --listen "unix:$socket" --access-log --graceful-timeout 5 &
fcgi_pid=$!
if ! wait_for "$fcgi_pid" test -S "$socket"; then
    echo "run: fcgi serve did not start" >&2
    exit 1
fi

# The same substitution as tests/support/nginx.rs: every @PLACEHOLDER@ gets a value.
fill() {
    local out
    out=$(sed -e "s|@PREFIX@|$prefix|g" -e "s|@SITE@|$prefix/conf/site.conf|g" \
        -e "s|@USER_DIRECTIVE@|$user_directive|g" -e "s|@HTTP_EXTRA@||g" \
        -e "s|@LISTEN@|127.0.0.1:$port|g" -e "s|@FCGI_SOCKET@|$socket|g" "$1")
    if grep -o '@[A-Z0-9_]*@' <<<"$out" >&2; then
        echo "run: $1 has a placeholder this script does not fill" >&2
        exit 1
    fi
    printf '%s\n' "$out"
}
# Started as root, nginx would hand its workers to `nobody`, who cannot reach the socket in
# this private directory: keep them as root (nginx/wrapper.conf says more).
user_directive=""
[ "$(id -u)" -ne 0 ] || user_directive="user root;"
cp "$params" "$prefix/conf/fastcgi_params"

for port in $(seq "$first_port" $((first_port + 100))); do
    port_taken "$port" && continue
    fill nginx/fcgi-unix.conf >"$prefix/conf/site.conf"
    fill nginx/wrapper.conf >"$prefix/conf/nginx.conf"
    rm -f "$prefix/nginx.pid"
    "$nginx" -p "$prefix" -c "$prefix/conf/nginx.conf" -e "$prefix/error.log" &
    nginx_pid=$!
    wait_for "$nginx_pid" nginx_up "$port" && break
    if kill -0 "$nginx_pid" 2>/dev/null || ! grep -q "in use" "$prefix/error.log"; then
        echo "run: nginx did not start:" >&2
        cat "$prefix/error.log" >&2
        exit 1
    fi
    wait "$nginx_pid" || true
    nginx_pid=""
done
if [ -z "$nginx_pid" ]; then
    echo "run: no free port from $first_port to $((first_port + 100))" >&2
    exit 1
fi

cat <<EOF

fcgi-rs is serving: http://127.0.0.1:$port/

  fcgi serve --app $app   on unix:$socket (pid $fcgi_pid), logging each request here
  nginx                   on 127.0.0.1:$port (pid $nginx_pid), from nginx/wrapper.conf and
                          nginx/fcgi-unix.conf; its logs: $prefix/{error,access}.log

Press Ctrl-C to stop.
EOF

# Until Ctrl-C (the INT trap), or until one of them stops on its own.
status=0
wait -n "$fcgi_pid" "$nginx_pid" || status=$?
echo "run: a process stopped by itself (status $status); stopping the other" >&2
exit 1
