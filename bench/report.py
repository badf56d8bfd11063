#!/usr/bin/python3
"""Writes the `make bench` section of docs/BENCHMARKS.md from bench/run.sh's raw results.

    report.py RESULTS_DIR BENCHMARKS_MD

RESULTS_DIR holds wrk's outputs (wrk_TARGET_cCONNS_rROUND.txt, axum_TARGET_PATH_rROUND.txt,
starve_TARGET_first.txt and _second.txt, profile_wrk.txt), `fcgi bench --json` outputs
(direct_BACKEND_MODE_rROUND.json, scaling_SERVER_rROUND.json, saturation_NAME.json,
limits_threads4.json, exec64_warmup.json), next to each measurement the CPU clock ticks its
backend used meanwhile (the same name ending in .cpu; the server's own, without the programs
it runs, in .own-cpu; nginx's in .nginx-cpu) and the server's context switches (.switches),
saturation.tsv, idle.tsv, exec64.tsv, perf's reports (profile_self.txt, profile_children.txt,
profile_comm.txt), load.txt (the load average as each round began), rss.tsv and
machine.env. Everything from the heading below to the end of BENCHMARKS_MD is replaced; what
comes before it is left as it is. Standard library only.
"""

import json
import re
import statistics
import sys
from pathlib import Path

HEADING = "## make bench: fcgi-rs against nginx's ceiling and the peers"

# The goals of issue 14 that are figures: the rate of the direct kept-connection run that
# the issue started from (`fcgi bench -c 32 --keep-conn`, the section's earlier run).
ISSUE_BASELINE_KEEP = 67342

TARGETS = [
    ("ceiling", "nginx `return 200` (the ceiling)"),
    ("fcgi-plain", "fcgi-rs, a connection per request"),
    ("fcgi-keepalive", "fcgi-rs, `keepalive 32`"),
    ("floor-plain", "the floor, a connection per request"),
    ("floor-keepalive", "the floor, `keepalive 32`"),
    ("php-plain", "PHP-FPM, a connection per request"),
    ("php-keepalive", "PHP-FPM, `keepalive 32`"),
    ("libfcgi-plain", "libfcgi, a connection per request"),
    ("libfcgi-keepalive", "libfcgi, `keepalive 4`"),
]
PEERS = [("fcgi", "fcgi-rs"), ("php", "PHP-FPM"), ("libfcgi", "libfcgi")]
BACKENDS = [("fcgi", "fcgi-rs"), ("floor", "the floor"), ("php", "PHP-FPM"), ("libfcgi", "libfcgi")]
SCALING = [
    ("fcgi-core1", "`taskset -c 0 fcgi serve`", 1),
    ("fcgi-core2", "`taskset -c 0,1 fcgi serve`", 2),
    ("fcgi-workers1", "`fcgi serve --workers 1`", None),
    ("fcgi-workers2", "`fcgi serve --workers 2` (prefork)", None),
]
AXUM = [
    ("axum-fcgi", "fcgi-rs (fcgi-http), `fastcgi_pass`, keepalive 32"),
    ("axum-hyper", "hyper (`axum::serve`), `proxy_pass`, keepalive 32"),
    ("axum-tokio-fastcgi", "tokio-fastcgi, `fastcgi_pass`, keepalive 32"),
]
AXUM_PATHS = [("hello", "`GET /hello` (text)"), ("items", "`GET /items` (JSON)")]
# /sleep awaits a 1 s timer, at 200 and 1,000 connections: requests kept in flight.
AXUM_SLEEP = [("sleep-c200", "`GET /sleep` (1 s), -c200"), ("sleep-c1000", "`GET /sleep` (1 s), -c1000")]
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
    run["requests"] = int(re.search(r"(\d+) requests in", text).group(1))
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
        "requests": data["completed"],
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


def div(a, b):
    """a / b, NaN when either is missing or b is 0."""
    return a / b if b and a == a and b == b else float("nan")


def ratio(a, b):
    return "—" if not b or a != a or b != b else f"{a / b:.2f}"


def peak_rss(rss, target):
    """A target's peak RSS and its process count, as a table cell."""
    if target not in rss:
        return "—"
    kib, procs = rss[target]
    return f"{kib / 1024:.1f} MiB ({procs} process{'es' if procs > 1 else ''})"


def rounds_of(results, pattern, parse, clk_tck=100):
    """Every round's run of one measurement, each with its backend's CPU per request (µs) when
    the .cpu file beside it says how many clock ticks the backend used."""
    runs = []
    for path in sorted(results.glob(pattern), key=lambda p: int(re.search(r"_r(\d+)\.", p.name).group(1))):
        try:
            run = parse(path)
        except (AttributeError, KeyError, ValueError):
            run = None
        if run is None:
            continue
        for key, suffix, scale in (
            ("cpu_us", ".cpu", 1e6 / clk_tck),
            ("nginx_cpu_us", ".nginx-cpu", 1e6 / clk_tck),
            ("own_cpu_us", ".own-cpu", 1e6 / clk_tck),
            ("switches", ".switches", 1.0),
        ):
            run[key] = float("nan")
            try:
                count = int(path.with_suffix(suffix).read_text())
                if run["requests"] > 0 and count >= 0:
                    run[key] = count * scale / run["requests"]
            except (OSError, ValueError):
                pass
        runs.append(run)
    return runs


def cpu_median(runs, key="cpu_us"):
    return median([r[key] for r in runs if r[key] == r[key]])


class Goals:
    """The goals of issue 14 and 13, each with what was measured and whether it is met."""

    def __init__(self):
        self.rows = []

    def add(self, goal, measured, value, met):
        """`met` is a bool, or None when the figure is missing."""
        verdict = "not measured" if met is None or value != value else ("**met**" if met else "**missed**")
        self.rows.append(f"| {goal} | {measured} | {verdict} |")


def main():
    results, out = Path(sys.argv[1]), Path(sys.argv[2])
    env = dict(line.split("=", 1) for line in (results / "machine.env").read_text().splitlines())
    clk = int(env.get("clk_tck", "100"))
    rss = {}
    for line in (results / "rss.tsv").read_text().splitlines():
        target, kib, procs = line.split("\t")
        rss[target] = (int(kib), int(procs))

    lines = [HEADING, ""]
    add = lines.append
    add(
        f"Machine: {env['nproc']} vCPUs ({env['cpu']}), a shared VM, kernel {env['kernel']}; "
        f"every process on the same 2 cores, which other builds share: absolute figures move "
        f"from run to run, and only the ratios within one run mean anything. Measured "
        f"{env['date']} by `make bench` "
        f"(`bench/run.sh`; BENCH_SECONDS={env['seconds']}, ROUNDS={env['rounds']}), "
        f"which took {int(env['took']) // 60} min {int(env['took']) % 60} s and rewrites this "
        "section, and only this one."
    )
    add("")
    load_path = results / "load.txt"
    if load_path.exists():
        loads = load_path.read_text().split()
        add(
            f"Load average (1 min) as each round started, and after the last: {', '.join(loads)}. "
            "The bench itself keeps about 2 runnable (a load generator, and a server or nginx); "
            "above that, other work shared the cores in that round, and a round whose figures "
            "stand apart from the others' is most likely one of those. CPU per request suffers "
            "less from it: it counts the backend's own time, not the time it waited."
        )
        add("")
    add(
        f"Versions: nginx {env['nginx']} (one worker), {env['php']}"
        f"{' with opcache' if env.get('opcache') else ''}, libfcgi {env['libfcgi']} under "
        f"spawn-fcgi {env['spawn_fcgi']}, wrk {env['wrk']}, {env['fcgi']} (commit "
        f"{env.get('commit', '?')}) built by {env['rustc']} (release); axum {env.get('axum', '?')}, hyper {env.get('hyper', '?')}, tokio "
        f"{env.get('tokio', '?')}, tokio-fastcgi {env.get('tokio_fastcgi', '?')}."
    )
    add("")
    add(
        "The app is the same everywhere: `Hello, world!` as text/plain (`fcgi serve --app hello`, "
        "`bench/hello.php`, `bench/hello.c`, `bench/floor.c`). Each target has its backend of "
        "its own, on a Unix socket: fcgi-rs with its default pool; **the floor**, "
        "`bench/floor.c`, a single-threaded epoll responder in C that frames records properly "
        "and writes a canned answer, the least a FastCGI server can do; PHP-FPM with "
        "`pm = static`, 4 children, no php.ini but opcache; libfcgi as 4 single-threaded "
        "processes (`spawn-fcgi -F 4`). nginx runs `nginx/wrapper.conf` around one server block "
        "per target, from `nginx/fcgi-unix.conf` (a connection per request), "
        "`nginx/fcgi-keepalive.conf` (`keepalive 32` and `fastcgi_keep_conn on`; `keepalive 4` "
        "for libfcgi, so that its 4 processes are not all held by idle connections) and "
        "`bench/nginx-ceiling.conf` (`return 200`), with the access log off and "
        f"`worker_connections 4096`. Every measurement lasts {env['seconds']} s; the rounds "
        "interleave the targets (A B C … A B C …) and the tables give each round and the median."
    )
    add("")
    add(
        "**Backend CPU per request**: the utime + stime of all the backend's processes (from "
        "`/proc/PID/stat`, which sums a process's threads; PHP-FPM's master and children, "
        "libfcgi's 4 processes), read before and after each measurement, over the requests "
        "served in it, in µs; the median over the rounds. nginx's and the load generator's own "
        "CPU are not in it. \"CPU ÷ floor\" is that over the floor's in the same table and mode."
    )
    add("")
    add("```sh")
    add("make bench    # = bash bench/run.sh")
    add(env["wrk_cmd"] + "    # and -c256; one PORT per target")
    add(env["bench_keep"])
    add(env["bench_new"])
    add("```")
    add("")
    goals_at = len(lines)
    goals = Goals()

    medians = {}
    cpu = {}
    for conns in (32, 256):
        add(f"### Through nginx: `wrk -t1 -c{conns}`")
        add("")
        add(
            "| target | requests/s per round | median | ÷ ceiling | ÷ floor | ÷ fcgi-rs | ÷ PHP-FPM "
            "| ÷ libfcgi | p99 | errors | served (Little) | backend CPU per request | CPU ÷ floor "
            "| backend peak RSS |"
        )
        add("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        table = {}
        for target, _ in TARGETS:
            runs = rounds_of(results, f"wrk_{target}_c{conns}_r*.txt", parse_wrk, clk)
            table[target] = runs
            medians[(target, conns)] = median([r["rps"] for r in runs])
            cpu[(target, conns)] = cpu_median(runs)
        ceiling = medians[("ceiling", conns)]
        for target, label in TARGETS:
            runs = table[target]
            rps = medians[(target, conns)]
            mode = target.split("-", 1)[1] if "-" in target else None
            floor = f"floor-{mode}"
            peers = []
            for backend, _ in PEERS:
                peer = f"{backend}-{mode}"
                peers.append("—" if mode is None or peer == target else ratio(rps, medians[(peer, conns)]))
            served = median([r["rps"] * r["mean"] / 1000 for r in runs])
            memory = peak_rss(rss, target)
            to_floor = "—" if mode is None or target == floor else ratio(rps, medians[(floor, conns)])
            cpu_floor = "—" if mode is None or target == floor else ratio(cpu[(target, conns)], cpu[(floor, conns)])
            cpu_cell = "—" if mode is None else f"{num(cpu[(target, conns)], 1)} µs"
            add(
                f"| {label} | {', '.join(num(r['rps']) for r in runs)} | **{num(rps)}** | "
                f"{ratio(rps, ceiling)} | {to_floor} | {' | '.join(peers)} | "
                f"{num(median([r['p99'] for r in runs]), 2)} ms | "
                f"{sum(r['errors'] for r in runs)} | {num(served, 1)} of {conns} | {cpu_cell} | "
                f"{cpu_floor} | {memory} |"
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
    add(
        "| backend | connections | requests/s per round | median | ÷ floor | ÷ fcgi-rs | p99 "
        "| errors (by kind) | in flight (Little) | backend CPU per request | CPU ÷ floor |"
    )
    add("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    direct = {}
    for mode, mode_label in MODES:
        for backend, _ in BACKENDS:
            runs = rounds_of(results, f"direct_{backend}_{mode}_r*.json", parse_bench, clk)
            direct[(backend, mode)] = (runs, median([r["rps"] for r in runs]), cpu_median(runs))
        for backend, label in BACKENDS:
            runs, rps, cpu_us = direct[(backend, mode)]
            floor_rps, floor_cpu = direct[("floor", mode)][1:]
            kinds = {}
            for r in runs:
                for kind, count in r["by_kind"].items():
                    kinds[kind] = kinds.get(kind, 0) + count
            errors = sum(kinds.values())
            detail = ", ".join(f"{k} {v}" for k, v in kinds.items() if v)
            is_floor = backend == "floor"
            add(
                f"| {label} | {mode_label} | {', '.join(num(r['rps']) for r in runs)} | **{num(rps)}** | "
                f"{'—' if is_floor else ratio(rps, floor_rps)} | "
                f"{ratio(rps, direct[('fcgi', mode)][1])} | {num(median([r['p99'] for r in runs]), 2)} ms | "
                f"{errors}{f' ({detail})' if detail else ''} | "
                f"{num(median([r['in_flight'] for r in runs]), 1)} of 32 | {num(cpu_us, 1)} µs | "
                f"{'—' if is_floor else ratio(cpu_us, floor_cpu)} |"
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

    programs = exec_section(results, env, clk, rss, add)
    scaling_section(results, env, clk, add)
    limits = limits_section(results, env, add)
    axum = axum_section(results, env, clk, add)

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
    saturation = dict(line.split("\t") for line in (results / "saturation.tsv").read_text().splitlines())
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
        add(f"| {label} | {where} | {rps} | {num(p99, 2)} ms | {saturation.get(name, '?')} % | {client} |")
    add("")

    cgi_section(results, env, rss, add)
    pools_section(results, env, add, goals)

    # The goals, measured above; their table goes before the measurements.
    fcgi_cpu = [
        (div(cpu[(f"fcgi-{m}", c)], cpu[(f"floor-{m}", c)]), f"nginx -c{c}, {m}")
        for m in ("plain", "keepalive")
        for c in (32, 256)
    ] + [
        (div(direct[("fcgi", m)][2], direct[("floor", m)][2]), f"direct, {m}")
        for m, _ in MODES
    ]
    fcgi_cpu = [x for x in fcgi_cpu if x[0] == x[0]]
    worst_cpu = max(fcgi_cpu, default=(float("nan"), ""))
    goals.add(
        "backend CPU per request ≤ 1.4× the floor's",
        f"{worst_cpu[0]:.2f}× at worst ({worst_cpu[1]}); "
        + ", ".join(f"{r:.2f}× {w}" for r, w in fcgi_cpu if w != worst_cpu[1]),
        worst_cpu[0],
        worst_cpu[0] <= 1.4,
    )
    for mode, goal, bound in [
        ("plain", "a connection per request (nginx) ≥ 0.92× the floor", 0.92),
        ("keepalive", "keepalive 32 (nginx) ≥ 0.97× the floor", 0.97),
    ]:
        r = [(div(medians[(f"fcgi-{mode}", c)], medians[(f"floor-{mode}", c)]), c) for c in (32, 256)]
        low = min(r)
        goals.add(goal, " and ".join(f"{x:.2f}× at -c{c}" for x, c in r), low[0], low[0] >= bound)
    keep = direct[("fcgi", "keep")][1]
    goals.add(
        f"direct `fcgi bench -c 32 --keep-conn` ≥ 1.5 × {ISSUE_BASELINE_KEEP:,} = "
        f"{1.5 * ISSUE_BASELINE_KEEP:,.0f} requests/s",
        f"{num(keep)} requests/s ({keep / ISSUE_BASELINE_KEEP:.2f}× {ISSUE_BASELINE_KEEP:,})",
        keep,
        keep >= 1.5 * ISSUE_BASELINE_KEEP,
    )
    new = div(direct[("fcgi", "new")][1], direct[("libfcgi", "new")][1])
    goals.add(
        "direct, a connection per request ≥ 1.5× libfcgi (4 processes)", f"{new:.2f}×", new, new >= 1.5
    )
    best_libfcgi = max(medians[("libfcgi-plain", 256)], medians[("libfcgi-keepalive", 256)])
    c256 = div(medians[("fcgi-keepalive", 256)], best_libfcgi)
    goals.add(
        "nginx `wrk -c256`, fcgi-rs behind keepalive 32 ≥ 1.5× libfcgi (its better row at -c256)",
        f"{c256:.2f}×",
        c256,
        c256 >= 1.5,
    )
    kib = limits.get("kib_per_conn", float("nan"))
    goals.add(
        "an idle kept connection that has served a request ≤ 4 KiB",
        f"{kib:.2f} KiB per connection" if kib == kib else "—",
        kib,
        kib <= 4,
    )
    threads4 = limits.get("threads4")
    goals.add(
        "256 kept connections against `--max-threads 4`: all served, no timeouts",
        (
            f"{threads4['completed']:,} requests, {threads4['errors']} errors, "
            f"{threads4['in_flight']:.0f} in flight"
            if threads4
            else "—"
        ),
        0.0 if threads4 else float("nan"),
        bool(threads4) and threads4["errors"] == 0 and threads4["completed"] > 0,
    )
    for peer, label, bound in [("axum-hyper", "hyper", 1.2), ("axum-tokio-fastcgi", "tokio-fastcgi", 1.5)]:
        r = [
            (div(axum[("axum-fcgi", path)], axum[(peer, path)]), path)
            for path, _ in AXUM_PATHS
            if ("axum-fcgi", path) in axum and (peer, path) in axum
        ]
        low = min(r, default=(float("nan"), ""))
        goals.add(
            f"axum app on fcgi-rs ≥ {bound:.1f}× on {label} (nginx, wrk -c32)",
            " and ".join(f"{x:.2f}× /{p}" for x, p in r) if r else "no fcgi-rs row",
            low[0],
            None if not r else low[0] >= bound,
        )
    sleeping = [
        (div(axum[("axum-fcgi", path)], axum[("axum-hyper", path)]), path)
        for path, _ in AXUM_SLEEP
        if ("axum-fcgi", path) in axum and ("axum-hyper", path) in axum
    ]
    low = min(sleeping, default=(float("nan"), ""))
    goals.add(
        "axum /sleep (1 s) on fcgi-rs ≥ 0.95× on hyper at 200 and 1,000 connections",
        " and ".join(f"{x:.2f}× {p.replace('sleep-', '')}" for x, p in sleeping) if sleeping else "no /sleep row",
        low[0],
        None if not sleeping else low[0] >= 0.95,
    )
    exec_goals(goals, programs)
    goals_lines = [
        "### Goals (issues 14, 13 and 20, `--app exec`'s and the pools')",
        "",
        "Each from the medians below, in this run.",
        "",
        "| goal | measured | |",
        "| --- | --- | --- |",
        *goals.rows,
        "",
    ]
    lines[goals_at:goals_at] = goals_lines

    text = out.read_text() if out.exists() else "# Benchmarks\n"
    at = text.find("\n" + HEADING + "\n")
    before = text if at < 0 else text[: at + 1]
    out.write_text(before.rstrip("\n") + "\n\n" + "\n".join(lines).rstrip("\n") + "\n")


def scaling_section(results, env, clk, add):
    """fcgi-rs on 1 and 2 cores, and as 1 and 2 prefork workers."""
    add("### Scaling: fcgi-rs on 1 and 2 cores, 1 and 2 worker processes")
    add("")
    add(
        "`fcgi bench -c 32 --keep-conn` straight at a server of its own for each line: fcgi-rs "
        "held to one core and to two with `taskset` (every thread it starts inherits the mask), "
        "and `fcgi serve --workers 1` (a single process, no master) and `--workers 2` (a master "
        "and two prefork workers sharing the socket). `fcgi bench` itself is not pinned: it runs "
        "wherever the scheduler puts it, as a web server would, so on this 2-core machine the "
        "server held to 2 cores shares both with the bench (and `taskset -c 0,1` is no "
        "restriction at all): 2 cores cannot show 2× here. Requests per CPU-second: 10⁶ over the "
        "CPU per request, what one fully busy core of the server would serve."
    )
    add("")
    add(
        "| server | requests/s per round | median | cores allowed | requests/s per core allowed "
        "| backend CPU per request | requests per CPU-second | p99 | errors |"
    )
    add("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    medians = {}
    for target, label, cores in SCALING:
        runs = rounds_of(results, f"scaling_{target}_r*.json", parse_bench, clk)
        rps = median([r["rps"] for r in runs])
        medians[target] = rps
        cpu_us = cpu_median(runs)
        add(
            f"| {label} | {', '.join(num(r['rps']) for r in runs)} | **{num(rps)}** | "
            f"{cores or env['nproc']} | {num(rps / (cores or int(env['nproc'])))} | "
            f"{num(cpu_us, 1)} µs | {num(1e6 / cpu_us if cpu_us else float('nan'))} | "
            f"{num(median([r['p99'] for r in runs]), 2)} ms | {sum(r['errors'] for r in runs)} |"
        )
    add("")
    add(
        f"2 cores ÷ 1 core: {ratio(medians['fcgi-core2'], medians['fcgi-core1'])}; "
        f"`--workers 2` ÷ `--workers 1`: {ratio(medians['fcgi-workers2'], medians['fcgi-workers1'])}."
    )
    add("")
    return medians


def limits_section(results, env, add):
    """256 kept connections against 4 threads; the memory of idle kept connections."""
    found = {}
    add("### Many connections: a small pool, and idle kept connections")
    add("")
    add(
        "**256 kept connections against `fcgi serve --app hello --max-threads 4`** "
        f"(`fcgi bench -c 256 --keep-conn --timeout 2 -d {env['seconds']}s`): every connection "
        "has a request in flight all the time, and 4 threads serve them. All of them must be "
        "served, none time out."
    )
    add("")
    threads4 = parse_bench(results / "limits_threads4.json")
    if threads4:
        data = json.loads((results / "limits_threads4.json").read_text())
        kinds = ", ".join(f"{k} {v}" for k, v in threads4["by_kind"].items())
        add("| requests | requests/s | errors (by kind) | in flight (Little) | p99 | max |")
        add("| --- | --- | --- | --- | --- | --- |")
        add(
            f"| {threads4['requests']:,} | {num(threads4['rps'])} | {threads4['errors']} ({kinds}) | "
            f"{threads4['in_flight']:.1f} of 256 | {num(threads4['p99'], 2)} ms | "
            f"{num(data['latency_ms']['max'], 2)} ms |"
        )
        found["threads4"] = {
            "completed": threads4["requests"],
            "errors": threads4["errors"],
            "in_flight": threads4["in_flight"],
        }
    else:
        add("(not measured: `fcgi bench` wrote no report)")
    add("")
    conns = env.get("idle_conns", "?")
    add(
        f"**{conns} idle kept connections** to a fresh `fcgi serve --app hello`, warmed up first "
        "(20,000 requests on 32 kept connections, which then close), each of which has served "
        "one request with FCGI_KEEP_CONN and then sits idle (`bench/idle.py` holds them): the "
        "server's VmRSS before they open and after, and its thread count."
    )
    add("")
    idle_path = results / "idle.tsv"
    if idle_path.exists():
        idle = dict(line.split("\t") for line in idle_path.read_text().splitlines())
        n, before, after = int(idle["conns"]), int(idle["rss_before"]), int(idle["rss_after"])
        kib = (after - before) / n
        found["kib_per_conn"] = kib
        add("| connections | VmRSS before | VmRSS after | per connection | threads before → after |")
        add("| --- | --- | --- | --- | --- |")
        add(
            f"| {n:,} | {before:,} KiB | {after:,} KiB | **{kib:.2f} KiB** | "
            f"{idle['threads_before']} → {idle['threads_after']} |"
        )
    else:
        add("(not measured: the idle connections were not all served; bench/run.sh said why)")
    add("")
    return found


def axum_section(results, env, clk, add):
    """The same axum app on fcgi-rs, hyper and tokio-fastcgi, behind the same nginx."""
    add("### One axum app three ways: fcgi-rs, hyper, tokio-fastcgi")
    add("")
    add(
        "The same Router (`tests/support/axum_app.rs`: `GET /hello` answers `Hello, world!`, "
        "`GET /items` a JSON array of three objects, `GET /sleep` `slept` after awaiting a 1 s "
        "timer, at 200 and 1,000 connections: how many requests each keeps in flight, with at "
        "most 200 and 1,000 req/s to be had), served by `axum-peers` "
        "(`tests/bin/axum_peers.rs`) three ways behind the same nginx: through fcgi-rs "
        "(`fcgi_http::serve`, `fastcgi_pass` with `nginx/fcgi-keepalive.conf`); on hyper "
        "(`axum::serve` on a tokio TcpListener, `proxy_pass` with `bench/nginx-proxy.conf`: "
        "HTTP/1.1 to the upstream, `keepalive 32`), what an axum user runs today; and through "
        "tokio-fastcgi 1.x (the same template), with glue from its request to an "
        "`http::Request` and back. hyper and tokio-fastcgi run on tokio's default runtime, a "
        "worker thread per core. nginx's CPU per request (its master and worker, measured like "
        "the backend's) shows what `proxy_pass` and `fastcgi_pass` each cost the web server."
    )
    add("")
    add("```sh")
    add(env.get("axum_wrk", "") + "    # and /items")
    for path, _ in AXUM_SLEEP:
        conns = path.replace("sleep-c", "")
        if env.get(f"axum_sleep_wrk_{conns}"):
            add(env[f"axum_sleep_wrk_{conns}"])
    add("```")
    add("")
    add(
        "| path | server | requests/s per round | median | ÷ hyper | ÷ tokio-fastcgi | p99 | errors "
        "| backend CPU per request | nginx CPU per request | backend peak RSS |"
    )
    add("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    medians = {}
    rss = {}
    rss_path = results / "rss.tsv"
    for line in rss_path.read_text().splitlines():
        target, kib, procs = line.split("\t")
        rss[target] = (int(kib), int(procs))
    for path, path_label in AXUM_PATHS + AXUM_SLEEP:
        table = {}
        for target, _ in AXUM:
            runs = rounds_of(results, f"axum_{target}_{path}_r*.txt", parse_wrk, clk)
            if runs:
                table[target] = runs
                medians[(target, path)] = median([r["rps"] for r in runs])
        for target, label in AXUM:
            runs = table.get(target)
            if not runs:
                continue
            rps = medians[(target, path)]
            cells = []
            for peer in ("axum-hyper", "axum-tokio-fastcgi"):
                cells.append("—" if peer == target or (peer, path) not in medians else ratio(rps, medians[(peer, path)]))
            add(
                f"| {path_label} | {label} | {', '.join(num(r['rps']) for r in runs)} | **{num(rps)}** | "
                f"{' | '.join(cells)} | {num(median([r['p99'] for r in runs]), 2)} ms | "
                f"{sum(r['errors'] for r in runs)} | {num(cpu_median(runs), 1)} µs | "
                f"{num(cpu_median(runs, 'nginx_cpu_us'), 1)} µs | {peak_rss(rss, target)} |"
            )
    add("")
    return medians


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


# --app exec: each program's rows, its peer first, in both nginx modes. (target, label, peer)
EXEC_PROGRAMS = [
    (
        "php",
        "php-cgi (`bench/hello.php`)",
        [
            ("php-{m}", "PHP-FPM, `pm = static`, 4 children", None),
            ("exec-php-{m}", "fcgi-rs + 4 php-cgi, `--program-connection kept`", "php-{m}"),
            ("exec-php-perreq-{m}", "fcgi-rs + 4 php-cgi, `--program-connection per-request`", "php-{m}"),
        ],
    ),
    (
        "libfcgi",
        "the libfcgi program (`bench/hello.c`)",
        [
            ("libfcgi-{m}", "spawn-fcgi -F 4", None),
            ("exec-libfcgi-{m}", "fcgi-rs + 4 processes, `--program-connection kept`", "libfcgi-{m}"),
            (
                "exec-libfcgi-perreq-{m}",
                "fcgi-rs + 4 processes, `--program-connection per-request`",
                "libfcgi-{m}",
            ),
        ],
    ),
]
EXEC_MODES = [("plain", "a connection per request"), ("keepalive", "kept")]


def parse_wrk_lenient(path):
    """A wrk output that may have served nothing at all (a starving location)."""
    try:
        return parse_wrk(path)
    except (AttributeError, OSError, ValueError):
        pass
    try:
        text = path.read_text()
    except OSError:
        return None
    found = re.search(r"(\d+) requests in", text)
    if not found:
        return None
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return {
        "rps": float(m.group(1)) if (m := re.search(r"Requests/sec:\s+([\d.]+)", text)) else 0.0,
        "requests": int(found.group(1)),
        "mean": float("nan"),
        "p99": float("nan"),
        "errors": sum(int(n) for n in socket.groups()) if socket else 0,
        "timeouts": int(socket.group(4)) if socket else 0,
    }


def perf_lines(path, columns):
    """perf report --stdio rows: (percentages..., kind, name); kind is "k", "." or None."""
    rows = []
    try:
        text = path.read_text()
    except OSError:
        return rows
    pattern = r"^\s+" + r"\s+".join([r"([\d.]+)%"] * columns) + r"\s+(?:\[(.)\]\s+)?(.+?)(?:\s+-\s+-)?\s*$"
    for line in text.splitlines():
        match = re.match(pattern, line)
        if match:
            values = [float(match.group(i + 1)) for i in range(columns)]
            rows.append((*values, match.group(columns + 1), match.group(columns + 2)))
    return rows


def exec_section(results, env, clk, rss, add):
    """FastCGI programs run by fcgi-rs against the same under PHP-FPM and spawn-fcgi."""
    found = {"medians": {}, "runs": {}}
    if not list(results.glob("wrk_exec-*_r*.txt")):
        return found
    add("### FastCGI programs run by fcgi-rs (`--app exec`): php-cgi and libfcgi")
    add("")
    add(
        f"`{env.get('exec_php', '')}` and `{env.get('exec_libfcgi', '')}`: fcgi-rs (a master and "
        "one serving worker) runs 4 processes of the program, each on a socket of its own, and "
        "gives each request, its body received whole, to an idle one; against the same 4 "
        "processes' worth under PHP-FPM (`pm = static`, `pm.max_children = 4`) and the same "
        "program under `spawn-fcgi -F 4`, each behind its own server block in the same nginx, "
        "in the same interleaved rounds as the tables above (the PHP-FPM and libfcgi rows are "
        "those tables' rows). php-cgi "
        f"({env.get('php_cgi', '?')}) runs with what PHP-FPM runs with: no php.ini, opcache "
        "(with `opcache.enable_cgi=1`), and no request limit (`PHP_FCGI_MAX_REQUESTS=0`, passed "
        "with `--pass-env`, as PHP-FPM's `pm.max_requests = 0`). opcache, asked through nginx "
        f"(`opcache_get_status()`): PHP-FPM {env.get('opcache_fpm', '?')}, php-cgi "
        f"{env.get('opcache_cgi', '?')}. `kept` (the default) keeps one connection to each "
        "program process (FCGI_KEEP_CONN); `per-request` connects to it for each request. nginx "
        "talks to fcgi-rs with a connection per request (`nginx/fcgi-unix.conf`) or kept "
        "(`nginx/fcgi-keepalive.conf`, `keepalive 32`); spawn-fcgi's libfcgi gets `keepalive 4`, "
        "as above."
    )
    add("")
    add(
        "CPU per request: **all** is every process of the backend (fcgi-rs's master, worker and "
        "programs; PHP-FPM's master and children; the 4 libfcgi processes); **server's own** is "
        "what serving costs besides the program: fcgi-rs's master and worker, PHP-FPM's master "
        "(its children accept and answer on their own; spawn-fcgi has no process left). \"own ÷ "
        "floor\" compares fcgi-rs's own with the floor's whole (`bench/floor.c`, in the same mode "
        "and run): fcgi-rs answers nginx as the floor does, and also relays to the program. "
        "Context switches per request: of the server's own processes, all their threads "
        "(voluntary and not, from `/proc/PID/task/*/status`)."
    )
    add("")
    medians, runs_of = found["medians"], found["runs"]

    def load(target, conns):
        key = (target, conns)
        if key not in runs_of:
            runs_of[key] = rounds_of(results, f"wrk_{target}_c{conns}_r*.txt", parse_wrk, clk)
            medians[key] = median([r["rps"] for r in runs_of[key]])
        return runs_of[key]

    for conns in (32, 256):
        add(f"#### Through nginx: `wrk -t1 -c{conns}`")
        add("")
        add(
            "| program | nginx to the backend | backend | requests/s per round | median | ÷ peer "
            "| p99 | errors (timeouts) | served (Little) | CPU per request, all | server's own "
            "| own ÷ floor | context switches per request | peak RSS: server / all |"
        )
        add("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for _, program_label, rows in EXEC_PROGRAMS:
            for mode, mode_label in EXEC_MODES:
                floor_runs = load(f"floor-{mode}", conns)
                floor_cpu = cpu_median(floor_runs)
                for pattern, label, peer in rows:
                    target = pattern.format(m=mode)
                    runs = load(target, conns)
                    if not runs:
                        continue
                    rps = medians[(target, conns)]
                    own = cpu_median(runs, "own_cpu_us")
                    is_exec = target.startswith("exec-")
                    nginx_mode = mode_label
                    if mode == "keepalive":
                        nginx_mode += ", `keepalive 4`" if target == "libfcgi-keepalive" else ", `keepalive 32`"
                    if target in rss:
                        server = peak_rss(rss, target)
                        everything = peak_rss(rss, f"{target}+programs") if is_exec else "(the same)"
                        memory = f"{server} / {everything}"
                    else:
                        memory = "—"
                    served = median([r["rps"] * r["mean"] / 1000 for r in runs])
                    timeouts = sum(r["timeouts"] for r in runs)
                    add(
                        f"| {program_label} | {nginx_mode} | {label} | "
                        f"{', '.join(num(r['rps']) for r in runs)} | **{num(rps)}** | "
                        f"{ratio(rps, medians[(peer.format(m=mode), conns)]) if peer else '—'} | "
                        f"{num(median([r['p99'] for r in runs]), 2)} ms | "
                        f"{sum(r['errors'] for r in runs)} ({timeouts}) | {num(served, 1)} of {conns} | "
                        f"{num(cpu_median(runs), 1)} µs | "
                        f"{num(own, 1) + ' µs' if own == own else '—'} | "
                        f"{ratio(own, floor_cpu) if is_exec else '—'} | "
                        f"{num(cpu_median(runs, 'switches'), 1) if is_exec else '—'} | {memory} |"
                    )
        floor_line = ", ".join(
            f"{mode} {num(cpu_median(load(f'floor-{mode}', conns)), 1)} µs "
            f"({num(cpu_median(load(f'floor-{mode}', conns), 'switches'), 1)} context switches)"
            for mode, _ in EXEC_MODES
        )
        add("")
        add(f"The floor's CPU per request at -c{conns}, for the \"own ÷ floor\" column: {floor_line}.")
        add("")

    add("#### `--program-connection`: kept (the default) against per-request")
    add("")
    add("| program | nginx to fcgi-rs | wrk | kept | per-request | kept ÷ per-request | CPU per request (all), kept / per-request |")
    add("| --- | --- | --- | --- | --- | --- | --- |")
    choice = []
    for program, program_label, _ in EXEC_PROGRAMS:
        for mode, mode_label in EXEC_MODES:
            for conns in (32, 256):
                kept, per = f"exec-{program}-{mode}", f"exec-{program}-perreq-{mode}"
                k, p = load(kept, conns), load(per, conns)
                if not k or not p:
                    continue
                r = div(medians[(kept, conns)], medians[(per, conns)])
                choice.append((r, f"{program} {mode} -c{conns}"))
                add(
                    f"| {program_label} | {mode_label} | -c{conns} | {num(medians[(kept, conns)])} | "
                    f"{num(medians[(per, conns)])} | {ratio(medians[(kept, conns)], medians[(per, conns)])} | "
                    f"{num(cpu_median(k), 1)} / {num(cpu_median(p), 1)} µs |"
                )
    found["choice"] = choice
    add("")
    programs_section(results, add)

    starve_section(results, add, found)
    profile_section(results, env, add)
    exec64_section(results, env, add, found)
    return found


def programs_section(results, add):
    """How many program processes each fcgi-rs started over the run, and why it stopped some."""
    path = results / "programs.tsv"
    if not path.exists():
        return
    rows = [line.split("\t") for line in path.read_text().splitlines() if line]
    if not rows:
        return
    add(
        "Program processes over the whole run, from each fcgi-rs's log (`--log-format json`, "
        "events `program-started` and `program-stopped` with its reason): each started 4 (64 "
        "for the memory row), so any more were replacements. `abort`: the web server gave up a "
        "request while a program had it (nginx does when its client goes away, as wrk's "
        "connections do with requests in flight at the end of each run), and fcgi-rs stopped "
        "that program and started another in its place."
    )
    add("")
    add("| fcgi-rs target | programs started | exited | stopped by fcgi-rs, by reason |")
    add("| --- | --- | --- | --- |")
    for fields in rows:
        target, started, exited = fields[:3]
        reasons = fields[3] if len(fields) > 3 and fields[3] else "none"
        add(f"| {target} | {started} | {exited} | {reasons.replace(',', ', ').replace(':', ' ')} |")
    add("")


def starve_section(results, add, found):
    """A second location starving under PHP-FPM, and not under fcgi-rs."""
    rows = []
    for target, label in [("starve-php", "PHP-FPM, 4 children"), ("starve-exec", "fcgi-rs + 4 php-cgi")]:
        first = parse_wrk_lenient(results / f"starve_{target}_first.txt")
        second = parse_wrk_lenient(results / f"starve_{target}_second.txt")
        if first and second:
            rows.append((target, label, first, second))
    if not rows:
        return
    add("#### A second location, beside one with kept connections")
    add("")
    add(
        "`bench/nginx-two-locations.conf`: one backend (with 4 processes, and of its own, so that "
        "no other row's connections hold them) behind two locations of one server block, "
        "`/hello.php` through an upstream with `keepalive 32` and `/second.php` (the same "
        "script) with a connection per request, as another part of a site might be configured. "
        "`wrk -t1 -c32` on the first and, at the same time, `wrk -t1 -c1` on the second. Read "
        "the requests answered: wrk looks for timeouts (no answer within 2 s) only every 2 s, "
        "so a request left unanswered to the end of the run may count as one timeout or none."
    )
    add("")
    add("| backend | first location: requests/s, p99, errors | second location: requests answered, requests/s, p99, timeouts |")
    add("| --- | --- | --- |")
    for target, label, first, second in rows:
        found[target] = second
        add(
            f"| {label} | {num(first['rps'])}, {num(first['p99'], 2)} ms, {first['errors']} | "
            f"{second['requests']:,}, {num(second['rps'])}, {num(second['p99'], 2)} ms, {second['timeouts']} |"
        )
    add("")


def profile_section(results, env, add):
    """Where fcgi-rs's worker spends its time under php-cgi, from perf."""
    profiled = env.get("profiled", "exec-php-keepalive")
    add("#### Where fcgi-rs's worker spends its time")
    add("")
    if env.get("perf") != "yes":
        add("(not measured: `perf record` does not work on this machine)")
        add("")
        return
    during = parse_wrk_lenient(results / "profile_wrk.txt")
    selfs = perf_lines(results / "profile_self.txt", 1)
    children = perf_lines(results / "profile_children.txt", 2)
    comms = perf_lines(results / "profile_comm.txt", 1)
    add(
        f"`perf record -e cpu-clock -F 999 -g -p WORKER` on fcgi-rs's worker process ({profiled}: "
        "4 php-cgi behind nginx's `keepalive 32`) during one more `wrk -t1 -c32` (not one of the "
        "rounds"
        + (f"; it served {num(during['rps'])} requests/s, perf watching" if during else "")
        + "). The software clock: this VM has no hardware counters. Call chains come from frame "
        "pointers, so the inclusive shares are approximate."
    )
    add("")
    kernel = sum(r[0] for r in selfs if r[1] == "k")
    add(f"In the kernel: at least {kernel:.0f} % of the samples (the functions listed below).")
    add("")
    add("| own samples | function |")
    add("| --- | --- |")
    for share, kind, name in selfs[:15]:
        add(f"| {share:.1f} % | `{name}`{' (kernel)' if kind == 'k' else ''} |")
    add("")
    ours = [r for r in children if r[2] == "." and ("fcgi" in r[3] or "std::" in r[3] or "syscall" in r[3])]
    if ours:
        add("| with callees | own | function (fcgi-rs's and the library's, user space) |")
        add("| --- | --- | --- |")
        for total, own, _, name in ours[:12]:
            add(f"| {total:.1f} % | {own:.1f} % | `{name}` |")
        add("")
    if comms:
        threads = {}
        for share, _, name in comms:
            key = re.sub(r"\d+$", "N", name.strip())
            threads[key] = threads.get(key, 0.0) + share
        add(
            "By thread: "
            + ", ".join(f"`{name}` {share:.1f} %" for name, share in sorted(threads.items(), key=lambda x: -x[1]))
            + "."
        )
        add("")


def exec64_section(results, env, add, found):
    """fcgi-rs's own memory running 64 program processes."""
    path = results / "exec64.tsv"
    if not path.exists():
        return
    rows = {}
    programs = 0
    for line in path.read_text().splitlines():
        fields = line.split("\t")
        if fields[0] == "programs":
            programs = int(fields[1])
        else:
            rows[fields[0]] = [int(x or 0) for x in fields[1:]]
    warm = parse_bench(results / "exec64_warmup.json")
    add("#### fcgi-rs's own memory, running 64 processes")
    add("")
    add(
        f"`fcgi serve --app exec --workers 64 -- ./hello` (`bench/hello.c`), after a warm-up of "
        f"`fcgi bench -c 256 --keep-conn -d {env['seconds']}s` straight at it"
        + (
            f" ({warm['requests']:,} requests, {warm['errors']} errors, {warm['in_flight']:.0f} in flight)"
            if warm
            else ""
        )
        + f"; {programs} program processes running when read. Only fcgi-rs's master and worker "
        "are counted, not the programs. PSS shares the pages the two have in common (the "
        "binary, what the worker inherited) between them; RSS counts them twice."
    )
    add("")
    add("| process | VmRSS | VmHWM (peak) | PSS | threads |")
    add("| --- | --- | --- | --- | --- |")
    total = [0, 0, 0]
    for role in ("master", "worker"):
        if role in rows:
            rss_kib, hwm, pss, threads = rows[role]
            total = [total[0] + rss_kib, total[1] + hwm, total[2] + pss]
            add(f"| {role} | {rss_kib / 1024:.1f} MiB | {hwm / 1024:.1f} MiB | {pss / 1024:.1f} MiB | {threads} |")
    add(f"| **both** | **{total[0] / 1024:.1f} MiB** | {total[1] / 1024:.1f} MiB | {total[2] / 1024:.1f} MiB | |")
    add("")
    found["exec64"] = {"rss_mib": total[0] / 1024, "hwm_mib": total[1] / 1024, "programs": programs}


def pools_section(results, env, add, goals):
    """A master of 8 pools against a master of one (bench/pools.sh)."""
    path = results / "pools.tsv"
    if not path.exists():
        return
    kv = dict(line.split("\t") for line in path.read_text().splitlines())
    got = {k: int(v) for k, v in kv.items()}
    extra = got["pools_beside"] - 1
    rss_per = (got["beside_rss_kib"] - got["alone_rss_kib"]) / extra / 1024
    pss_per = (got["beside_pss_kib"] - got["alone_pss_kib"]) / extra / 1024
    runs = {
        name: rounds_of(results, f"pools_wrk_{name}_r*.txt", parse_wrk) for name in ("alone", "beside")
    }
    med = {name: median([r["rps"] for r in rs]) for name, rs in runs.items()}
    p99 = {name: median([r["p99"] for r in rs]) for name, rs in runs.items()}
    ratio_ = div(med["beside"], med["alone"])
    add("### A master of 8 pools")
    add("")
    add(
        "`fcgi serve --config` of one pool (hello), and of 8 (hello twice, echo twice, the CGI "
        "gateway twice, `--app exec` of `bench/hello.c` twice, ondemand: no program runs while "
        "idle), each pool a master and a worker of its own under the master of the pools; read "
        "idle after every pool served a request. RSS counts in every process the pages they "
        "share (the binary's code above all, mapped by each); PSS divides those between the "
        "processes that share them, so its sum is what the pools take from the machine. "
        f"Throughput: the hello pool of each behind one nginx (upstream keepalive 32), "
        f"`wrk -t1 -c32 -d{env['seconds']}s`, interleaved rounds, the other 7 pools idle."
    )
    add("")
    add("| | processes | VmRSS, all | PSS, all | requests/s (median) | p99 |")
    add("| --- | --- | --- | --- | --- | --- |")
    for name, label in (("alone", "1 pool"), ("beside", "8 pools")):
        add(
            f"| {label} | {got[f'{name}_processes']} | {got[f'{name}_rss_kib'] / 1024:.1f} MiB | "
            f"{got[f'{name}_pss_kib'] / 1024:.1f} MiB | {num(med[name])} | {num(p99[name], 2)} ms |"
        )
    add("")
    add(
        f"Per extra pool: {rss_per:.1f} MiB of RSS, {pss_per:.2f} MiB of PSS; the hello pool "
        f"beside 7 idle ones serves {ratio_:.2f}× what it serves alone."
    )
    add("")
    goals.add(
        "a master of 8 pools idles at ≤ 2 MiB of RSS per extra pool",
        f"{rss_per:.1f} MiB of RSS ({pss_per:.2f} MiB of PSS) per extra pool",
        rss_per,
        rss_per <= 2,
    )
    goals.add(
        "one pool beside 7 idle ones ≥ 0.97× the same pool alone (nginx, wrk -c32)",
        f"{ratio_:.2f}× ({num(med['beside'])} vs {num(med['alone'])} requests/s)",
        ratio_,
        ratio_ >= 0.97,
    )


def exec_goals(goals, found):
    """The goals of `--app exec`, from what exec_section measured."""
    medians, runs_of = found.get("medians", {}), found.get("runs", {})

    def cells(target, peer):
        return [(div(medians.get((target, c), float("nan")), medians.get((peer, c), float("nan"))), c) for c in (32, 256)]

    def worst(r):
        return min(r, key=lambda x: x[0] if x[0] == x[0] else -1, default=(float("nan"), 0))

    for target, peer, goal, bound in [
        ("exec-php-plain", "php-plain", "php-cgi under fcgi-rs ≥ 0.9× PHP-FPM, a connection per request (nginx)", 0.9),
        ("exec-libfcgi-plain", "libfcgi-plain", "libfcgi under fcgi-rs ≥ 0.8× spawn-fcgi, a connection per request (nginx)", 0.8),
    ]:
        r = cells(target, peer)
        low = worst(r)
        goals.add(goal, " and ".join(f"{x:.2f}× at -c{c}" for x, c in r), low[0], low[0] >= bound)

    r = cells("exec-php-keepalive", "php-keepalive")
    low = worst(r)
    runs = [runs_of.get(("exec-php-keepalive", c), []) for c in (32, 256)]
    timeouts = sum(x["timeouts"] for rs in runs for x in rs)
    p99 = [median([x["p99"] for x in rs]) for rs in runs]
    worst_p99 = max(p99, default=float("nan"))
    goals.add(
        "php-cgi under fcgi-rs, keepalive 32 ≥ 1.0× PHP-FPM with keepalive 32, 0 timeouts, p99 < 20 ms",
        " and ".join(f"{x:.2f}× at -c{c}" for x, c in r)
        + f"; {timeouts} timeouts; p99 {' and '.join(f'{x:.2f} ms' for x in p99)} (median over the rounds)",
        low[0],
        low[0] >= 1.0 and timeouts == 0 and worst_p99 < 20,
    )
    r = cells("exec-libfcgi-keepalive", "libfcgi-keepalive")
    low = worst(r)
    errors = sum(x["errors"] for c in (32, 256) for x in runs_of.get(("exec-libfcgi-keepalive", c), []))
    goals.add(
        "libfcgi under fcgi-rs, keepalive 32 ≥ 1.0× spawn-fcgi (its `keepalive 4` row), 0 errors",
        " and ".join(f"{x:.2f}× at -c{c}" for x, c in r) + f"; {errors} errors",
        low[0],
        low[0] >= 1.0 and errors == 0,
    )
    mem = found.get("exec64")
    goals.add(
        "fcgi-rs's own RSS (master + worker) running 64 processes, after a warm-up ≤ 16 MiB",
        f"{mem['rss_mib']:.1f} MiB (peak {mem['hwm_mib']:.1f} MiB), {mem['programs']} programs" if mem else "—",
        mem["rss_mib"] if mem else float("nan"),
        bool(mem) and mem["rss_mib"] <= 16,
    )
    choice = [x for x in found.get("choice", []) if x[0] == x[0]]
    mid = median([x[0] for x in choice])
    goals.add(
        "`--program-connection kept` (the default) serves at least as many requests/s as "
        "`per-request` (median of its ratios)",
        f"median {mid:.2f}×: " + ", ".join(f"{x:.2f}× {w}" for x, w in choice) if choice else "—",
        mid,
        mid >= 1.0,
    )


if __name__ == "__main__":
    main()
