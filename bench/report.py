#!/usr/bin/python3
"""Writes the `make bench` section of docs/BENCHMARKS.md from bench/run.sh's raw results.

    report.py RESULTS_DIR BENCHMARKS_MD

RESULTS_DIR holds wrk's outputs (wrk_TARGET_cCONNS_rROUND.txt), `fcgi bench --json` outputs
(direct_BACKEND_MODE_rROUND.json, saturation_NAME.json), saturation.tsv, rss.tsv and
machine.env. Everything from the heading below to the end of BENCHMARKS_MD is replaced; what
comes before it is left as it is. Standard library only.
"""

import json
import re
import statistics
import sys
from pathlib import Path

HEADING = "## make bench: fcgi-rs against nginx's ceiling and the peers"

TARGETS = [
    ("ceiling", "nginx `return 200` (the ceiling)"),
    ("fcgi-plain", "fcgi-rs, a connection per request"),
    ("fcgi-keepalive", "fcgi-rs, `keepalive 32`"),
    ("php-plain", "PHP-FPM, a connection per request"),
    ("php-keepalive", "PHP-FPM, `keepalive 32`"),
    ("libfcgi-plain", "libfcgi, a connection per request"),
    ("libfcgi-keepalive", "libfcgi, `keepalive 4`"),
]
BACKENDS = [("fcgi", "fcgi-rs"), ("php", "PHP-FPM"), ("libfcgi", "libfcgi")]
MODES = [("keep", "32 kept connections"), ("new", "a connection per request, 32 at once")]

CGI_TARGETS = [("cgi-fcgi", "fcgi-rs `--app cgi`"), ("cgi-fcgiwrap", "fcgiwrap, 4 workers")]
CGI_SCRIPTS = [
    ("trivial", "trivial shell script"),
    ("big", "10 MiB response"),
    ("slow", "sleeps 100 ms"),
]

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def ms(text):
    """wrk's `489.00us`, `1.23ms`, `2.00s` in ms."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    return float(match.group(1)) * UNITS[match.group(2)]


def parse_wrk(path):
    text = path.read_text()
    run = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))}
    run["mean"] = ms(re.search(r"Latency\s+(\S+)", text).group(1))
    run["p99"] = ms(re.search(r"\s99%\s+(\S+)", text).group(1))
    errors = 0
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if socket:
        errors += sum(int(n) for n in socket.groups())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if non2xx:
        errors += int(non2xx.group(1))
    run["errors"] = errors
    run["timeouts"] = int(socket.group(4)) if socket else 0
    transfer = re.search(r"Transfer/sec:\s+([\d.]+)([KMG]?B)", text)
    scale = {"B": 1e-6, "KB": 1e-3, "MB": 1.0, "GB": 1e3}
    run["mb_s"] = float(transfer.group(1)) * scale[transfer.group(2)] if transfer else float("nan")
    return run


def parse_bench(path):
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return {
        "rps": data["requests_per_s"],
        "mean": data["latency_ms"]["mean"],
        "p99": data["latency_ms"]["p99"],
        "errors": data["errors"],
        "by_kind": data["errors_by_kind"],
        "in_flight": data["in_flight"],
    }


def median(values):
    return statistics.median(values) if values else float("nan")


def num(x, digits=0):
    if x != x:  # NaN
        return "—"
    return f"{x:,.{digits}f}"


def ratio(a, b):
    return "—" if not b or a != a or b != b else f"{a / b:.2f}"


def peak_rss(rss, target):
    """A target's peak RSS and its process count, as a table cell."""
    if target not in rss:
        return "—"
    kib, procs = rss[target]
    return f"{kib / 1024:.1f} MiB ({procs} process{'es' if procs > 1 else ''})"


def rounds_of(results, pattern, parse):
    runs = []
    for path in sorted(results.glob(pattern), key=lambda p: int(re.search(r"_r(\d+)\.", p.name).group(1))):
        run = parse(path)
        if run is not None:
            runs.append(run)
    return runs


def main():
    results, out = Path(sys.argv[1]), Path(sys.argv[2])
    env = dict(line.split("=", 1) for line in (results / "machine.env").read_text().splitlines())
    rss = {}
    for line in (results / "rss.tsv").read_text().splitlines():
        target, kib, procs = line.split("\t")
        rss[target] = (int(kib), int(procs))

    lines = [HEADING, ""]
    add = lines.append
    add(
        f"Machine: {env['nproc']} vCPUs ({env['cpu']}), a shared VM, kernel {env['kernel']}; "
        f"every process on the same 2 cores. Measured {env['date']} by `make bench` "
        f"(`bench/run.sh`; BENCH_SECONDS={env['seconds']}, ROUNDS={env['rounds']}), "
        f"which took {int(env['took']) // 60} min {int(env['took']) % 60} s and rewrites this "
        "section, and only this one."
    )
    add("")
    add(
        f"Versions: nginx {env['nginx']} (one worker), {env['php']}"
        f"{' with opcache' if env.get('opcache') else ''}, libfcgi {env['libfcgi']} under "
        f"spawn-fcgi {env['spawn_fcgi']}, wrk {env['wrk']}, {env['fcgi']} built by {env['rustc']} "
        "(release)."
    )
    add("")
    add(
        "The app is the same everywhere: `Hello, world!` as text/plain (`fcgi serve --app hello`, "
        "`bench/hello.php`, `bench/hello.c`). Each target has its backend of its own, on a Unix "
        "socket: fcgi-rs with its default pool; PHP-FPM with `pm = static`, 4 children, no "
        "php.ini but opcache; libfcgi as 4 single-threaded processes (`spawn-fcgi -F 4`). nginx "
        "runs `nginx/wrapper.conf` around one server block per target, from "
        "`nginx/fcgi-unix.conf` (a connection per request), `nginx/fcgi-keepalive.conf` "
        "(`keepalive 32` and `fastcgi_keep_conn on`; `keepalive 4` for libfcgi, so that its 4 "
        "processes are not all held by idle connections) and `bench/nginx-ceiling.conf` "
        "(`return 200`), with the access log off and `worker_connections 4096`. Every "
        f"measurement lasts {env['seconds']} s; the rounds interleave the targets (A B C … A B C …) "
        "and the tables give each round and the median."
    )
    add("")
    add("```sh")
    add("make bench    # = bash bench/run.sh")
    add(env["wrk_cmd"] + "    # and -c256; one PORT per target")
    add(env["bench_keep"])
    add(env["bench_new"])
    add("```")
    add("")

    medians = {}
    for conns in (32, 256):
        add(f"### Through nginx: `wrk -t1 -c{conns}`")
        add("")
        add(
            "| target | requests/s per round | median | ÷ ceiling | ÷ fcgi-rs | ÷ PHP-FPM | ÷ libfcgi "
            "| p99 | errors | served (Little) | backend peak RSS |"
        )
        add("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        table = {}
        for target, _ in TARGETS:
            runs = rounds_of(results, f"wrk_{target}_c{conns}_r*.txt", parse_wrk)
            table[target] = runs
            medians[(target, conns)] = median([r["rps"] for r in runs])
        ceiling = medians[("ceiling", conns)]
        for target, label in TARGETS:
            runs = table[target]
            rps = medians[(target, conns)]
            mode = target.split("-", 1)[1] if "-" in target else None
            peers = []
            for backend, _ in BACKENDS:
                peer = f"{backend}-{mode}"
                peers.append("—" if mode is None or peer == target else ratio(rps, medians[(peer, conns)]))
            served = median([r["rps"] * r["mean"] / 1000 for r in runs])
            memory = peak_rss(rss, target)
            add(
                f"| {label} | {', '.join(num(r['rps']) for r in runs)} | **{num(rps)}** | "
                f"{ratio(rps, ceiling)} | {' | '.join(peers)} | {num(median([r['p99'] for r in runs]), 2)} ms | "
                f"{sum(r['errors'] for r in runs)} | {num(served, 1)} of {conns} | {memory} |"
            )
        add("")
    add(
        "÷ columns: this target's median over that one's in the same mode (a connection per "
        "request, or kept). Errors: wrk's socket errors (connect, read, write, and timeouts: no "
        "answer within 2 s) and non-2xx answers, summed over the rounds. Served: the requests in "
        "flight on average, requests/s × mean latency (Little's law), in the median round: how "
        "many of wrk's connections were actually being served. Peak RSS: VmHWM summed over the "
        "backend's processes (PHP-FPM's master and children), over the whole run. A served figure "
        "above the number of connections cannot be a count: it comes with stalled requests "
        "(a p99 near wrk's 2 s timeout), whose long latencies weigh on wrk's mean; read it as "
        "\"stalled\", and the p99 and the errors as the symptom."
    )
    add("")

    add("### Straight to the backend: `fcgi bench -c 32`, no nginx")
    add("")
    add("| backend | connections | requests/s per round | median | ÷ fcgi-rs | p99 | errors (by kind) | in flight (Little) |")
    add("| --- | --- | --- | --- | --- | --- | --- | --- |")
    direct = {}
    for mode, mode_label in MODES:
        for backend, _ in BACKENDS:
            runs = rounds_of(results, f"direct_{backend}_{mode}_r*.json", parse_bench)
            direct[(backend, mode)] = (runs, median([r["rps"] for r in runs]))
        for backend, label in BACKENDS:
            runs, rps = direct[(backend, mode)]
            kinds = {}
            for r in runs:
                for kind, count in r["by_kind"].items():
                    kinds[kind] = kinds.get(kind, 0) + count
            errors = sum(kinds.values())
            detail = ", ".join(f"{k} {v}" for k, v in kinds.items() if v)
            add(
                f"| {label} | {mode_label} | {', '.join(num(r['rps']) for r in runs)} | **{num(rps)}** | "
                f"{ratio(rps, direct[('fcgi', mode)][1])} | {num(median([r['p99'] for r in runs]), 2)} ms | "
                f"{errors}{f' ({detail})' if detail else ''} | "
                f"{num(median([r['in_flight'] for r in runs]), 1)} of 32 |"
            )
    add("")
    add(
        "`fcgi bench` times each request from just before it is sent (before connecting, for a "
        "connection per request) to the end of its response, and counts a request that gets no "
        "answer within `--timeout 2` as a timeout. With 32 kept connections and 4 workers that "
        "each hold the connection they took, the other 28 connections wait in the listen "
        "backlog and time out: the in-flight column shows how many were served."
    )
    add("")

    add("### Is `fcgi bench` the bottleneck?")
    add("")
    add(
        "One single-threaded libfcgi process (`bench/hello.c`), `fcgi bench` pinned to CPU 0 and "
        "the process to CPU 1 (or to CPU 0 too), with `taskset`. CPU is user + system time over "
        "the wall time of the run, 100 % being one core: the process's from /proc, the bench's "
        "as it reports it. A libfcgi process serves one connection at a time: a kept one until "
        "it closes, and without keep-alive it waits for the client to close each connection "
        "before it accepts the next, so every request costs it a round trip to the client."
    )
    add("")
    add("| `fcgi bench` | libfcgi on | requests/s | p99 | libfcgi CPU | `fcgi bench` CPU |")
    add("| --- | --- | --- | --- | --- | --- |")
    cpu = dict(line.split("\t") for line in (results / "saturation.tsv").read_text().splitlines())
    for name, label, where in [
        ("keep-c1", "`-c 1 --keep-conn`", "CPU 1"),
        ("new-c1", "`-c 1`", "CPU 1"),
        ("new-c4", "`-c 4`", "CPU 1"),
        ("new-c16", "`-c 16`", "CPU 1"),
        ("two", "two at once, `-c 2` each", "CPU 1"),
        ("same-keep-c1", "`-c 1 --keep-conn`", "CPU 0 (shared)"),
        ("same-new-c4", "`-c 4`", "CPU 0 (shared)"),
    ]:
        if name == "two":
            pair = [results / f"saturation_two-{x}.json" for x in "ab"]
            runs = [json.loads(p.read_text()) for p in pair if p.exists()]
            if len(runs) != 2:
                continue
            rps = num(sum(r["requests_per_s"] for r in runs)) + " (sum)"
            p99 = max(r["latency_ms"]["p99"] for r in runs)
            client = " + ".join(f"{r['cpu_percent']:.0f} %" for r in runs)
        else:
            path = results / f"saturation_{name}.json"
            if not path.exists():
                continue
            r = json.loads(path.read_text())
            rps, p99, client = num(r["requests_per_s"]), r["latency_ms"]["p99"], f"{r['cpu_percent']:.0f} %"
        add(f"| {label} | {where} | {rps} | {num(p99, 2)} ms | {cpu.get(name, '?')} % | {client} |")
    add("")

    cgi_section(results, env, rss, add)

    text = out.read_text() if out.exists() else "# Benchmarks\n"
    at = text.find("\n" + HEADING + "\n")
    before = text if at < 0 else text[: at + 1]
    out.write_text(before.rstrip("\n") + "\n\n" + "\n".join(lines).rstrip("\n") + "\n")


def cgi_section(results, env, rss, add):
    """The CGI gateway against fcgiwrap, if the run measured it."""
    if not list(results.glob("cgi_*_r*.txt")):
        return
    add("### CGI gateway: `fcgi serve --app cgi` against fcgiwrap")
    add("")
    add(
        f"The same programs, run by fcgi-rs (one process, its default pool) and by fcgiwrap "
        f"{env.get('fcgiwrap', '')} (Debian's; `spawn-fcgi -- fcgiwrap -c 4`: 4 worker processes, "
        "each serving one request at a time), each on a Unix socket behind its own server block "
        "from `nginx/fcgi-cgi.conf` in the same nginx, in the same interleaved rounds. The "
        "programs: `printf 'Content-Type: text/plain\\n\\n'; echo 'Hello, world!'` (`#!/bin/sh`), "
        "the same header then `exec head -c 10485760 /dev/zero`, and `sleep 0.1` then a header "
        "and a line."
    )
    add("")
    add("```sh")
    for script, _ in CGI_SCRIPTS:
        add(env.get(f"cgi_wrk_{script}", ""))
    add("```")
    add("")
    add("| program | target | requests/s per round | median | ÷ fcgiwrap | MB/s (median) | p99 | errors | backend peak RSS |")
    add("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for script, script_label in CGI_SCRIPTS:
        medians = {}
        table = {}
        for target, _ in CGI_TARGETS:
            runs = rounds_of(results, f"cgi_{target}_{script}_r*.txt", parse_wrk)
            table[target] = runs
            medians[target] = median([r["rps"] for r in runs])
        for target, label in CGI_TARGETS:
            runs = table[target]
            rps = medians[target]
            peer = "—" if target == "cgi-fcgiwrap" else ratio(rps, medians["cgi-fcgiwrap"])
            memory = peak_rss(rss, target)
            add(
                f"| {script_label} | {label} | {', '.join(num(r['rps']) for r in runs)} | "
                f"**{num(rps)}** | {peer} | {num(median([r['mb_s'] for r in runs]), 1)} | "
                f"{num(median([r['p99'] for r in runs]), 2)} ms | {sum(r['errors'] for r in runs)} | {memory} |"
            )
    add("")
    add(
        "Peak RSS: VmHWM summed over the backend's long-lived processes over the whole run "
        "(the programs themselves come and go, and are not counted for either). The sleeping "
        "program measures concurrency: fcgiwrap serves as many requests at once as it has "
        "processes, fcgi-rs as many as its pool has threads (64 by default), in one process."
    )
    add("")


if __name__ == "__main__":
    main()
