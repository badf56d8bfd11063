"""A WSGI app on flup (PyPI flup 1.0.3), as `fcgi serve --app exec` runs it.

With no bindAddress, flup's WSGIServer accepts on the listening socket on fd 0; told not to
multiplex, it answers FCGI_MPXS_CONNS 0 and takes one request per connection at a time, in a
thread per connection. Each request gets what every program in this directory answers
(tests/support/programs.rs reads it): a hello line, the pid, the method and query, and the
length and SHA-256 of the request body. A query with `sleep_ms=N` makes it wait N ms first,
so that a test can keep it busy. flup comes from PYTHONPATH (tests/deps.sh installs it).
"""

import hashlib
import os
import re
import time

from flup.server.fcgi import WSGIServer


def app(environ, start_response):
    body = environ["wsgi.input"].read()
    query = environ.get("QUERY_STRING", "")
    sleep = re.search(r"sleep_ms=(\d+)", query)
    if sleep:
        time.sleep(int(sleep.group(1)) / 1000)
    answer = (
        "hello from flup\n"
        f"pid={os.getpid()}\n"
        f"method={environ.get('REQUEST_METHOD', '')}\n"
        f"query={query}\n"
        f"length={len(body)}\n"
        f"sha256={hashlib.sha256(body).hexdigest()}\n"
    )
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [answer.encode()]


WSGIServer(app, bindAddress=None, multiplexed=False).run()
