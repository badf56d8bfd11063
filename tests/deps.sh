#!/usr/bin/env bash
# Installs the system packages the tests need, on a fresh Debian machine, idempotently:
# only what is missing is installed, and `apt-get update` runs only when something is.
# Packages given as arguments are installed instead of the tests' list (bench/run.sh does so).
set -euo pipefail

# One package per line; later test suites add theirs here.
packages=(
    # tests/integration/web/nginx.rs and `make run`: /usr/sbin/nginx, with the FastCGI module and
    # upstream keepalive built in. On Debian 12 this is the smallest package that has them:
    # nginx-light and the others only add modules to it.
    nginx
    # tests/integration/ops/request.rs: `fcgi request` against a real PHP-FPM (/usr/sbin/php-fpm8.2
    # on Debian 12).
    php-fpm
    # tests/integration/cgi/gateway.rs: git clone and push over HTTP through
    # /usr/lib/git-core/git-http-backend, and Python CGI scripts (/usr/bin/python3).
    git
    python3
    # The CGI gateway's peer in `make bench` (fcgiwrap under spawn-fcgi), installed with the
    # tests' packages so that a machine set up by `make deps` can run the comparison.
    fcgiwrap
    spawn-fcgi
    # tests/integration/prefork/master.rs: load through nginx while workers are reloaded, upgraded
    # and recycled.
    wrk
    # tests/integration/exec/faults.rs and tests/integration/ops/request_timeout.rs: curl's exit
    # status tells a response cut short (18) from a whole one, as a client sees it through nginx.
    curl
    # tests/integration/web/caddy.rs: fcgi-rs behind a real Caddy (`reverse_proxy` with `transport
    # fastcgi`).
    caddy
    # tests/integration/logs/status_page.rs: the status page's OpenMetrics text, read by the
    # Prometheus client's own parser (prometheus_client.openmetrics.parser).
    python3-prometheus-client
    # tests/integration/ops/systemd.rs: systemd-socket-activate hands the shipped units' socket over
    # as systemd does, and systemd-analyze verifies and scores them (no running systemd needed).
    systemd
    # tests/integration/ops/install.rs: `man -l` renders the installed man pages and reports troff's
    # warnings (without it the test checks only their title line).
    man-db
    # tests/integration/web/multihost.rs: `ip netns` and veth pairs, one network namespace per
    # fcgi-rs host.
    iproute2
    # tests/integration/web/authorizer.rs: lighttpd's FastCGI authorizer mode, a real
    # Authorizer-role client.
    lighttpd
    # tests/integration/web/authorizer_no_stdin.rs: Apache 2.4's mod_authnz_fcgi (/usr/sbin/apache2
    # and its modules), the Authorizer-role client that sends no FCGI_STDIN at all. Only started by
    # the test, in its own directory; the package's own service is not used.
    apache2
    # tests/integration/exec/programs.rs and tests/integration/exec/conformance.rs: real FastCGI
    # programs under `fcgi serve --app exec`. php-cgi (/usr/bin/php-cgi, php8.2-cgi on Debian 12),
    # run as the program itself;
    php-cgi
    # a C program on libfcgi, compiled by the test (fcgiapp.h and -lfcgi), and cgi-fcgi, the
    # library's own client;
    libfcgi-dev
    libfcgi-bin
    # a Perl script on FCGI.pm (an `FCGI::Request()` loop);
    libfcgi-perl
    # and pip, which installs flup (a Python WSGI server, from PyPI only) into the build
    # directory below.
    python3-pip
)
# Given packages of its own, the caller wants only those (not the Python packages below).
only_given=$#
[ $# -eq 0 ] || packages=("$@")

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "deps: all ${#packages[@]} system packages present"
else
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
[ "$only_given" -eq 0 ] || exit 0

# tests/integration/exec/programs.rs: flup 1.0.3, a Python WSGI server on FastCGI, which Debian does
# not package for Python 3. pip puts it in the build directory, where the test looks for it
# (CARGO_TARGET_DIR, target/ by default): nothing outside the checkout changes.
repo=$(cd "$(dirname "$0")/.." && pwd)
python_dir="${CARGO_TARGET_DIR:-$repo/target}/test-python"
flup=flup==1.0.3
if [ -d "$python_dir/flup-1.0.3.dist-info" ]; then
    echo "deps: $flup present in $python_dir"
else
    echo "deps: installing $flup into $python_dir"
    /usr/bin/python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --upgrade \
        --target "$python_dir" "$flup"
fi
