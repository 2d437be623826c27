#!/usr/bin/env python3
"""Records, statistics, JSON and Markdown for bench/run.sh and bench/splice.sh.

The shell scripts orchestrate: they start processes, pin them and sample counters. Everything
that is arithmetic or formatting happens here, so that it can be tested (bench/test_report.py)
and rerun on old results. The data flow:

  meta           once, before the first run: date, commit, machine, and the versions and
                 settings given as KEY=TEXT or KEY:=JSON (dotted keys nest) -> META.json
  http-record    after each run.sh run: wrk's output plus the CPU/RSS samples -> one JSON line
                 appended to RUNS.jsonl; prints a one-line summary for the log
  http-report    META.json + RUNS.jsonl (or an earlier latest.json via --from) -> latest.json
                 and the marked section of docs/benchmarks.md
  splice-record  after each splice.sh run: flowbench's JSON line plus the agent's /debug/state
                 -> one JSON line appended to RUNS.jsonl (exit status 3 when the run failed)
  splice-report  META.json + RUNS.jsonl (or an earlier splice-latest.json) -> splice-latest.json
                 and the splice-results section of docs/benchmarks.md

Python 3 standard library only: the benchmark machine has no PyPI.
"""

import argparse
import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import textwrap

RUN_FAILED = 3  # exit status of a *-record command whose run failed (shown, not a crash)

HTTP_BEGIN = "<!-- BEGIN BENCH RESULTS"
HTTP_END = "<!-- END BENCH RESULTS"
SPLICE_BEGIN = "<!-- splice-results:begin -->"
SPLICE_END = "<!-- splice-results:end -->"
DASH = "\u2014"  # what a cell shows when there is no value
WARN = "\u26a0"

# ---------------------------------------------------------------------------------------------
# Statistics


def median(values):
    """The median of the values (mean of the middle two for an even count); None when empty."""
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def lower_median_index(count):
    """Index of the reported run among `count` sorted runs: the lower median for even counts,
    so that the reported row is always one run that really happened."""
    return (count - 1) // 2


def spread_percent(low, high, centre):
    """(high - low) as a percentage of centre; 0 when centre is not positive. Divides before it
    multiplies, as the jq summary of splice.sh did, so regenerated results match to the bit."""
    return (high - low) / centre * 100 if centre > 0 else 0.0


def ratio(a, b):
    """a / b, or None when either is missing or b is 0."""
    if a is None or b is None or b == 0:
        return None
    return a / b


def fixed(value, decimals):
    """The value printf("%.Nf") would show, as a number: what the old awk code stored."""
    text = f"{value:.{decimals}f}"
    return int(text) if decimals == 0 else float(text)


def plain(value):
    """Integral floats as ints, as jq and awk print them (0 rather than 0.0)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def fmt(spec, value):
    """printf-style cell; a dash for a missing value."""
    if value is None or value == "":
        return DASH
    return format(value, spec)


def ratio_cell(value):
    return DASH if value is None else f"{value:.2f}\u00d7"


# ---------------------------------------------------------------------------------------------
# Files


def read_records(path):
    """One JSON object per non-empty line."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def append_record(path, record):
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, ensure_ascii=False) + "\n")


def write_text(path, text):
    """Through a temporary file, so an interrupted write never leaves half a result behind."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def load_inputs(args, derived_keys):
    """(meta, records) from --meta/--records, or from an earlier result file given by --from."""
    if args.source:
        with open(args.source, encoding="utf-8") as f:
            data = json.load(f)
        meta = {k: v for k, v in data.items() if k not in derived_keys}
        return meta, data.get("all_runs", [])
    if not (args.meta and args.records):
        raise SystemExit("report.py: give --meta and --records, or --from")
    with open(args.meta, encoding="utf-8") as f:
        meta = json.load(f)
    return meta, read_records(args.records)


def splice_section(doc, section, begin, end, new_doc_head):
    """Replaces the lines from the one starting with `begin` to the one starting with `end` (both
    included) with `section`; appends it when the markers are missing. The hand-written text
    around the markers is kept as it is."""
    text = new_doc_head
    if os.path.exists(doc):
        with open(doc, encoding="utf-8") as f:
            text = f.read()
    lines = text.splitlines(keepends=True)
    starts = [i for i, l in enumerate(lines) if l.startswith(begin)]
    ends = [i for i, l in enumerate(lines) if l.startswith(end)]
    if starts and ends and ends[-1] > starts[0]:
        stop = next(i for i in ends if i > starts[0])
        lines[starts[0]:stop + 1] = [section]
        text = "".join(lines)
    else:
        text = text + ("" if text.endswith("\n") or not text else "\n") + "\n" + section
    os.makedirs(os.path.dirname(os.path.abspath(doc)), exist_ok=True)
    with open(doc, "w", encoding="utf-8") as f:  # in place: keeps the file's mode and owner
        f.write(text)


# ---------------------------------------------------------------------------------------------
# meta: what is the same for every run


def first_line(path, pattern):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                m = re.match(pattern, line)
                if m:
                    return m.group(1).strip()
    except OSError:
        pass
    return ""


def command_output(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info():
    cpu = first_line("/proc/cpuinfo", r"model name\s*:(.*)")
    cpu = cpu or first_line("/proc/cpuinfo", r"(?:Hardware|cpu model|uarch)\s*:(.*)")
    mem_kib = first_line("/proc/meminfo", r"MemTotal:\s*(\d+)")
    uname = os.uname()
    with open("/proc/loadavg", encoding="utf-8") as f:
        loadavg = " ".join(f.read().split()[:3])
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "kernel": f"{uname.sysname} {uname.release} {uname.machine}",
        "memory": f"{int(mem_kib or 0) / 1048576:.1f} GiB",
        "virtualization": command_output(["systemd-detect-virt"]) or "unknown",
        "loadavg_at_start": loadavg,
    }


def git_revision(repo):
    rev = command_output(["git", "-C", repo, "rev-parse", "--short", "HEAD"])
    if not rev:
        return "unknown"
    dirty = command_output(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"])
    return rev + ("+dirty" if dirty else "")


def assign(target, assignment):
    """KEY=TEXT sets a string, KEY:=JSON a JSON value; a dotted KEY nests (settings.repeat)."""
    key, sep, value = assignment.partition("=")
    if not sep or not key:
        raise SystemExit(f"report.py: bad assignment '{assignment}' (KEY=TEXT or KEY:=JSON)")
    if key.endswith(":"):
        key = key[:-1]
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise SystemExit(f"report.py: {key}:= is not JSON: {value!r} ({e})") from e
    *parents, leaf = key.split(".")
    for p in parents:
        target = target.setdefault(p, {})
    target[leaf] = value


def cmd_meta(args):
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": args.command,
        "git": git_revision(args.repo),
        "machine": machine_info(),
    }
    for a in args.assignments:
        assign(meta, a)
    write_text(args.out, json.dumps(meta, ensure_ascii=False, indent=2) + "\n")
    return 0


# ---------------------------------------------------------------------------------------------
# HTTP (run.sh): one record per wrk run

WRK_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}


def wrk_ms(text):
    """wrk's "674.00us" / "31.21ms" / "1.02s" in milliseconds, with awk's 6 significant digits."""
    m = re.match(r"([0-9.]+)(\D*)$", text)
    if not m:
        return 0
    value = float(m.group(1)) * WRK_UNITS_MS.get(m.group(2), 1.0)
    return plain(float(f"{value:.6g}"))


def parse_wrk(text):
    """requests_per_sec, p50_ms, p99_ms, requests, socket_errors and non_2xx_3xx from wrk
    --latency output; socket_error_detail is wrk's own breakdown, or "none"."""
    out = {"requests_per_sec": 0, "p50_ms": 0, "p99_ms": 0, "requests": 0,
           "socket_errors": 0, "socket_error_detail": "none", "non_2xx_3xx": 0}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] in ("50%", "99%"):
            out["p50_ms" if fields[0] == "50%" else "p99_ms"] = wrk_ms(fields[1])
        elif " requests in " in line:
            out["requests"] = int(fields[0])
        elif line.startswith("Requests/sec:"):
            out["requests_per_sec"] = plain(float(fields[1]))
        elif "Socket errors:" in line:
            detail = line.split("Socket errors:", 1)[1].strip()
            out["socket_error_detail"] = detail
            out["socket_errors"] = sum(int(n) for n in re.findall(r"\b[a-z]+ (\d+)", detail))
        elif "Non-2xx or 3xx responses:" in line:
            out["non_2xx_3xx"] = int(fields[-1])
    return out


def http_run_record(wrk, s):
    """The record of one run: wrk's figures (see parse_wrk) plus what the samples `s` (CPU ticks
    and jiffies over the measured interval, VmHWM) say, rounded as latest.json has always had
    them. `cpu_vs_origin` is the proxy's CPU per request over the origin's in the same run."""
    hz, reqs = s["clk_tck"], wrk["requests"]
    cpu_s, origin_s = s["proxy_ticks"] / hz, s["origin_ticks"] / hz
    wall = s["wall_seconds"]
    both_busy, both_total = s["both_cores"]
    ours = s["proxy_ticks"] + s["origin_ticks"] + s["wrk_ticks"]
    other = 200.0 * (both_busy - ours) / both_total if both_total > 0 else 0.0

    def busy(pair):
        return 100.0 * pair[0] / pair[1] if pair[1] > 0 else 0.0

    rec = {"proxy": s["proxy"], "connections": s["connections"], "run": s["run"]}
    rec.update({k: wrk[k] for k in ("requests_per_sec", "p50_ms", "p99_ms", "requests")})
    rec.update({
        "proxy_cpu_seconds": fixed(cpu_s, 2),
        "cpu_seconds_per_100k_requests": fixed(cpu_s / reqs * 100000, 3),
        "origin_cpu_seconds": fixed(origin_s, 2),
        "origin_cpu_seconds_per_100k_requests": fixed(origin_s / reqs * 100000, 3),
        "cpu_vs_origin": fixed(cpu_s / origin_s, 3) if origin_s > 0 else None,
        "proxy_cpu_percent": fixed(100.0 * cpu_s / wall, 0) if wall > 0 else 0,
        "proxy_core_busy_percent": fixed(busy(s["proxy_core"]), 0),
        "client_core_busy_percent": fixed(busy(s["client_core"]), 0),
        "other_processes_cpu_percent": fixed(max(other, 0.0), 0),
        "peak_rss_mib": fixed(s["rss_kib"] / 1024, 1),
    })
    rec.update({k: wrk[k] for k in ("socket_errors", "socket_error_detail", "non_2xx_3xx")})
    rec["raw"] = s["raw"]
    rec["samples"] = {k: s[k] for k in HTTP_SAMPLE_KEYS}
    return rec


HTTP_SAMPLE_KEYS = ("clk_tck", "wall_seconds", "proxy_ticks", "origin_ticks", "wrk_ticks",
                    "rss_kib", "proxy_core", "client_core", "both_cores")


def http_run_summary(r):
    """The log line of one run."""
    origin = r.get("cpu_vs_origin")
    return (f"{r['proxy']} c={r['connections']} run {r['run']}: {r['requests_per_sec']} req/s, "
            f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, "
            f"{r['cpu_seconds_per_100k_requests']:.3f} CPU-s/100k"
            f" (\u00f7 origin {fmt('.2f', origin)}), {r['peak_rss_mib']:.1f} MiB, errors "
            f"socket={r['socket_errors']} non2xx={r['non_2xx_3xx']}, proxy CPU "
            f"{r['proxy_cpu_percent']}%, other processes {r['other_processes_cpu_percent']}% "
            "of a core")


def cmd_http_record(args):
    with open(args.wrk, encoding="utf-8", errors="replace") as f:
        wrk = parse_wrk(f.read())
    if wrk["requests"] <= 0:
        print(f"wrk completed no requests (see {args.wrk})")
        return RUN_FAILED
    samples = {
        "proxy": args.proxy, "connections": args.conns, "run": args.run, "raw": args.raw_path,
        "clk_tck": args.clk_tck, "wall_seconds": round(args.ended - args.started, 3),
        "proxy_ticks": args.proxy_ticks, "origin_ticks": args.origin_ticks,
        "wrk_ticks": args.wrk_ticks, "rss_kib": args.rss_kib, "proxy_core": args.proxy_core,
        "client_core": args.client_core, "both_cores": args.both_cores,
    }
    record = http_run_record(wrk, samples)
    if args.idle:
        record["idle_connections"] = args.idle
        record["rss_before_idle_mib"] = fixed(args.rss_base_kib / 1024, 1)
        record["idle_kib_per_connection"] = fixed((args.rss_kib - args.rss_base_kib) / args.idle, 2)
    append_record(args.out, record)
    print(http_run_summary(record))
    return 0


# ---------------------------------------------------------------------------------------------
# HTTP: statistics over the runs

# latest.json's key order for a run; keys a record lacks (older records) are left out.
HTTP_RUN_KEYS = (
    "proxy", "connections", "run", "requests_per_sec", "p50_ms", "p99_ms", "requests",
    "proxy_cpu_seconds", "cpu_seconds_per_100k_requests", "origin_cpu_seconds",
    "origin_cpu_seconds_per_100k_requests", "cpu_vs_origin", "proxy_cpu_percent",
    "proxy_core_busy_percent", "client_core_busy_percent", "other_processes_cpu_percent",
    "noisy", "peak_rss_mib", "idle_connections", "rss_before_idle_mib", "idle_kib_per_connection",
    "socket_errors", "socket_error_detail", "non_2xx_3xx", "flagged",
    "raw", "samples")


def http_thresholds(settings):
    """(noise %, spread %) as run.sh applied them: other processes may use more under fifo,
    where they only fill the gaps while the benchmark's processes wait."""
    fifo = str(settings.get("scheduling", "")).startswith("SCHED_FIFO")
    return (settings.get("noise_percent", 60 if fifo else 10),
            settings.get("spread_percent", 15))


def http_entry(record, noise_pct):
    """A record as latest.json shows it, with its flags."""
    r = dict(record)
    r["noisy"] = r["other_processes_cpu_percent"] > noise_pct
    r["flagged"] = r["socket_errors"] + r["non_2xx_3xx"] > 0
    return {k: r[k] for k in HTTP_RUN_KEYS if k in r}


def http_groups(records):
    """{(proxy, connections): [records]} in the order the runs first met each pair."""
    groups = {}
    for r in records:
        groups.setdefault((r["proxy"], r["connections"]), []).append(r)
    return groups


def http_row(runs, noise_pct):
    """One (proxy, connections) row: the run with the median req/s (the lower one of two), the
    min-max range of req/s and CPU per 100k requests over the runs, and CPU / origin as the
    median over the runs (each run's own ratio, so both figures come from the same pass)."""
    ranked = sorted(runs, key=lambda r: (r["requests_per_sec"], r["run"]))
    med = ranked[lower_median_index(len(ranked))]
    rps = [r["requests_per_sec"] for r in runs]
    cpu = [r["cpu_seconds_per_100k_requests"] for r in runs]
    row = http_entry(med, noise_pct)
    row.update({
        "runs": len(runs),
        "requests_per_sec_min": fixed(min(rps), 0),
        "requests_per_sec_max": fixed(max(rps), 0),
        "requests_per_sec_spread_percent":
            fixed(spread_percent(min(rps), max(rps), med["requests_per_sec"]), 0),
        "cpu_seconds_per_100k_min": fixed(min(cpu), 2),
        "cpu_seconds_per_100k_max": fixed(max(cpu), 2),
    })
    idle = [r["idle_kib_per_connection"] for r in runs if "idle_kib_per_connection" in r]
    if idle:
        row["idle_kib_per_connection_median"] = fixed(median(idle), 2)
        row["idle_kib_per_connection_min"] = min(idle)
        row["idle_kib_per_connection_max"] = max(idle)
    ratios = [r["cpu_vs_origin"] for r in runs if r.get("cpu_vs_origin") is not None]
    if ratios:
        row["cpu_vs_origin_median"] = fixed(median(ratios), 3)
        row["cpu_vs_origin_min"] = min(ratios)
        row["cpu_vs_origin_max"] = max(ratios)
    return row


def http_row_noisy(row, noise_pct, spread_pct, repeat):
    """A row is flagged when other work shared the cores or (with repeats) the runs disagreed.
    The rounded figures are compared, as the table shows them."""
    unsteady = repeat > 1 and row["requests_per_sec_spread_percent"] > spread_pct
    return row["other_processes_cpu_percent"] > noise_pct or unsteady


def http_rows(meta, records):
    noise_pct, _ = http_thresholds(meta.get("settings", {}))
    return [http_row(runs, noise_pct) for runs in http_groups(records).values()]


def result_json(meta, derived):
    """The result file: meta's keys, then the derived ones; a list is written one item per line,
    anything else on one line, so that a diff of two results reads run by run."""
    parts = []
    for key, value in list(meta.items()) + list(derived.items()):
        if isinstance(value, list) and value:
            items = ",\n".join("    " + json.dumps(v, ensure_ascii=False) for v in value)
            text = "[\n" + items + "\n  ]"
        else:
            text = json.dumps(value, ensure_ascii=False)
        parts.append(f"  {json.dumps(key)}: {text}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


# ---------------------------------------------------------------------------------------------
# HTTP: Markdown


def errors_cell(r):
    sockerr, non2xx = r["socket_errors"], r["non_2xx_3xx"]
    if sockerr == 0 and non2xx == 0:
        return "0"
    parts = []
    if sockerr > 0:
        parts.append("socket: " + r["socket_error_detail"].replace(", ", "/"))
    if non2xx > 0:
        parts.append(f"non-2xx/3xx: {non2xx}")
    return f"{WARN} {sockerr + non2xx} ({';'.join(parts)})"


def sched_desc(settings, none_words=("default", "normal priority", "")):
    s = settings.get("scheduling", "")
    return "" if s in none_words else s


def http_intro(meta):
    st = meta["settings"]
    sched, repeat = sched_desc(st), st["repeat"]
    median_note = (f" Each row is the median-req/s run of {repeat} (interleaved); all runs are in"
                   " `latest.json`.") if repeat > 1 else ""
    return [
        "<!-- BEGIN BENCH RESULTS: generated by bench/run.sh; everything up to END is overwritten"
        " -->",
        "## Latest results", "",
        f"Run on {meta['date']} at commit `{meta['git']}` (load average at start: "
        f"{meta['machine']['loadavg_at_start']}) with:", "",
        "```sh", meta["command"], "```", "",
        "HTTP/1.1 keep-alive `GET /` of a 1024-byte body through each proxy to one shared nginx"
        " origin;",
        f"wrk `-t{st['wrk_threads']} -c<conns> -d{st['duration']} --latency` after a "
        f"{st['warmup']} unmeasured warm-up. Proxy",
        f"pinned to core {st['proxy_cpu']} with 1 worker/thread; wrk and the origin pinned to core "
        f"{st['client_cpu']}{'; all three at ' + sched if sched else ''}. Each",
        f"proxy is started fresh for every run.{median_note}", "",
    ]


def http_main_table(rows, with_origin):
    origin_head, origin_rule = (" CPU \u00f7 origin |", "---:|") if with_origin else ("", "")
    lines = [
        "| proxy | conns | req/s | p50 ms | p99 ms | CPU s per 100k req |" + origin_head +
        " peak RSS MiB | errors |",
        "|---|---:|---:|---:|---:|---:|" + origin_rule + "---:|---|",
    ]
    for r in rows:
        origin = f" {fmt('.2f', r.get('cpu_vs_origin_median'))} |" if with_origin else ""
        lines.append(
            f"| {r['proxy']} | {r['connections']} | {r['requests_per_sec']:.0f} | "
            f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['cpu_seconds_per_100k_requests']:.2f} |"
            f"{origin} {r['peak_rss_mib']:.1f} | {errors_cell(r)} |")
    lines.append("")
    if with_origin:
        repeat = rows[0]["runs"] if rows else 1
        over = f"; the median over the {repeat} runs" if repeat > 1 else ""
        text = ("**CPU \u00f7 origin** is the proxy's CPU per request divided by the origin"
                " nginx's in the same run (utime+stime of each over the measured interval)"
                f"{over}. Every proxy talks to the same origin, so this ratio carries over between"
                " machines better than CPU-seconds do.")
        lines += textwrap.wrap(text, width=100) + [""]
    return lines


def http_idle_table(rows):
    """The idle-connections workload: what one idle keep-alive connection costs each proxy."""
    idle = [r for r in rows if "idle_kib_per_connection_median" in r]
    if not idle:
        return []
    lines = [
        "**Idle connections** (rows `<load>+<N>idle`): bench/tools/idle_holder.py opens N"
        " keep-alive",
        "connections (one `GET /` each, then silence) after the warm-up, and wrk keeps a light"
        " load on",
        "`<load>` more. KiB per idle connection = (peak RSS − RSS before they opened) ÷"
        " idle connections, median over the runs.", "",
        "| proxy | idle conns | RSS before MiB | peak RSS MiB | KiB per idle conn | over runs |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in idle:
        lines.append(
            f"| {r['proxy']} | {r['idle_connections']} | {r['rss_before_idle_mib']:.1f} | "
            f"{r['peak_rss_mib']:.1f} | {r['idle_kib_per_connection_median']:.2f} | "
            f"{range_cell(r['idle_kib_per_connection_min'], r['idle_kib_per_connection_max'])} |")
    return lines + [""]


def http_cpu_text(st, noise_pct, spread_pct, with_origin):
    fifo = str(st.get("scheduling", "")).startswith("SCHED_FIFO")
    fifo_note = ("; under SCHED_FIFO they only run when the benchmark processes wait or are"
                 " RT-throttled, so it says more about idle gaps than about interference"
                 if fifo else "")
    lines = [
        "Where the CPU went during each reported run (percent of one core; core figures from",
        "/proc/stat; the proxy's own from utime+stime of its processes, which on this kernel"
        " includes",
        "the loopback softirq work done in its system calls). \"other\" is CPU that processes"
        " other than",
        f"the proxy, the origin and wrk got on the two cores (flagged above {noise_pct}%)"
        f"{fifo_note}.",
    ]
    if st["repeat"] > 1:
        last = "three" if with_origin else "two"
        lines.append(f"The last {last} columns show the range over the {st['repeat']} runs (flagged"
                     f" when req/s varied by more than {spread_pct}% of the median).")
    lines.append("")
    return lines


def http_cpu_table(st, rows, noise_pct, spread_pct, with_origin):
    repeat = st["repeat"]
    head = (f"| proxy | conns | proxy CPU % | core {st['proxy_cpu']} busy % | core "
            f"{st['client_cpu']} busy % (wrk + origin) | other % |")
    rule = "|---|---:|---:|---:|---:|---|"
    if repeat > 1:
        head += " req/s over runs | CPU s/100k over runs |"
        rule += "---|---|"
        if with_origin:
            head += " CPU \u00f7 origin over runs |"
            rule += "---|"
    lines = [head, rule]
    for r in rows:
        other = r["other_processes_cpu_percent"]
        line = (f"| {r['proxy']} | {r['connections']} | {r['proxy_cpu_percent']} | "
                f"{r['proxy_core_busy_percent']} | {r['client_core_busy_percent']} | "
                f"{WARN + ' ' if other > noise_pct else ''}{other} |")
        if repeat > 1:
            spread = r["requests_per_sec_spread_percent"]
            line += (f" {r['requests_per_sec_min']}\u2013{r['requests_per_sec_max']} ({spread}%)"
                     f"{' ' + WARN if spread > spread_pct else ''} | "
                     f"{r['cpu_seconds_per_100k_min']:.2f}\u2013"
                     f"{r['cpu_seconds_per_100k_max']:.2f} |")
            if with_origin:
                line += f" {range_cell(r.get('cpu_vs_origin_min'), r.get('cpu_vs_origin_max'))} |"
        lines.append(line)
    lines.append("")
    return lines


def range_cell(low, high):
    return DASH if low is None else f"{low:.2f}\u2013{high:.2f}"


def machine_line(m):
    virt = m.get("virtualization", "unknown")
    virt = f", virtualization: {virt}" if virt not in ("unknown", "") else ""
    return (f"Machine: {m['nproc']} cores, {m['cpu']}, {m['memory']} RAM, kernel "
            f"{m['kernel']}{virt}.")


def http_markdown(meta, rows):
    st = meta["settings"]
    noise_pct, spread_pct = http_thresholds(st)
    with_origin = any(r.get("cpu_vs_origin_median") is not None for r in rows)
    lines = http_intro(meta) + http_main_table(rows, with_origin) + http_idle_table(rows)
    lines += http_cpu_text(st, noise_pct, spread_pct, with_origin)
    lines += http_cpu_table(st, rows, noise_pct, spread_pct, with_origin)
    noisy = sum(http_row_noisy(r, noise_pct, spread_pct, st["repeat"]) for r in rows)
    if noisy:
        lines += [f"**Warning:** {noisy} of {len(rows)} rows are flagged {WARN} above: the machine"
                  " was busy with other work",
                  "or the runs disagreed. Treat differences smaller than the run-to-run range as"
                  " noise.", ""]
    v = meta.get("versions", {})
    versions = ", ".join(v[k] for k in ("nginx", "haproxy", "caddy", "wrk") if v.get(k))
    lines += [machine_line(meta["machine"]),
              f"Versions: {versions}, ingress-agent at `{meta['git']}` (Release).", "",
              "Raw wrk outputs: `bench/results/raw/` (not committed); machine-readable: "
              "`bench/results/latest.json`.",
              "<!-- END BENCH RESULTS -->"]
    return "\n".join(lines) + "\n"


HTTP_DOC_HEAD = """# Benchmarks

Side-by-side HTTP/1.1 reverse-proxy benchmark of Sluice against nginx, HAProxy and Caddy, produced
by `bench/run.sh`. Method, pinning and caveats: `bench/README.md`.

"""


def cmd_http_report(args):
    meta, records = load_inputs(args, ("results", "all_runs"))
    if not records:
        raise SystemExit("report.py: no runs to report")
    noise_pct, spread_pct = http_thresholds(meta.get("settings", {}))
    meta.setdefault("settings", {}).setdefault("noise_percent", noise_pct)
    meta["settings"].setdefault("spread_percent", spread_pct)
    rows = http_rows(meta, records)
    if args.json:
        runs = [http_entry(r, noise_pct) for r in records]
        write_text(args.json, result_json(meta, {"results": rows, "all_runs": runs}))
    section = http_markdown(meta, rows)
    if args.doc:
        splice_section(args.doc, section, HTTP_BEGIN, HTTP_END, HTTP_DOC_HEAD)
    table = section.split("\n| proxy | conns | req/s", 1)[1].split("\n\n", 1)[0]
    print("| proxy | conns | req/s" + table)
    return 0


# ---------------------------------------------------------------------------------------------
# Kernel splice (splice.sh): one record per flowbench run


def flowbench_result(stdout_path, stderr_path, rc, workload):
    """flowbench's JSON line, or a failure record saying why there is none."""
    try:
        with open(stdout_path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
        result = json.loads(lines[-1]) if lines else None
    except (OSError, json.JSONDecodeError):
        result = None
    if isinstance(result, dict):
        return result
    tail = ""
    if stderr_path and os.path.exists(stderr_path):
        with open(stderr_path, encoding="utf-8", errors="replace") as f:
            tail = "\n".join(f.read().rstrip("\n").splitlines()[-3:])
    return {"ok": False, "mode": workload,
            "error": f"flowbench exited {rc} without a result: {tail}"}


def splice_state(path):
    """The "splice" object of the agent's /debug/state, or None (no agent, or it had died)."""
    if not path or not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
    except (OSError, json.JSONDecodeError):
        return None
    return state.get("splice") if isinstance(state, dict) else None


def splice_run_summary(r):
    """The log line of one run (the error, for a failed one)."""
    r = plain(r)
    if r.get("ok") is not True:
        return r.get("error") or r.get("first_error") or "?"
    note = ""
    if r.get("splice_state") is not None:
        note = ", splice " + json.dumps(r["splice_state"], separators=(",", ":"))
    cpu = (f"agent {r['cpu_proxy_seconds']}, flowbench {r['cpu_self_seconds']}, kernel threads "
           f"{r['cpu_kernel_threads_seconds']}")
    if r.get("mode") == "bulk":
        return (f"{r['mib_per_s']} MiB/s, {r['cpu_seconds']} CPU-s ({r['cpu_seconds_per_gib']} "
                f"per GiB; {cpu}), eof {json.dumps(r['eof'])}{note}")
    return (f"{r['messages_per_s']} msgs/s, {r['messages_per_cpu_second']} msgs per CPU-s, rtt "
            f"p50 {r['rtt_p50_us']} us p99 {r['rtt_p99_us']} us ({cpu} CPU-s){note}")


def cmd_splice_record(args):
    record = flowbench_result(args.flowbench, args.stderr, args.rc, args.workload)
    record.update({"bench_mode": args.mode, "run": args.run,
                   "splice_state": splice_state(args.state)})
    append_record(args.out, record)
    print(splice_run_summary(record))
    return 0 if record.get("ok") is True else RUN_FAILED


# ---------------------------------------------------------------------------------------------
# Kernel splice: statistics

SPLICE_METRIC = {"bulk": "mib_per_s", "msgs": "messages_per_s"}


def splice_cell(runs, workload, noise_pct, spread_pct):
    """One mode's result for one workload: its median run (the lower one of two, by MiB/s or
    messages/s, over the runs that succeeded) plus counts, range and flags."""
    metric = SPLICE_METRIC[workload]
    every = [r for r in runs if r.get("mode") == workload]
    ok = sorted((r for r in every if r.get("ok") is True), key=lambda r: r[metric])
    if not ok:
        errors = [r.get("error") or r.get("first_error") for r in every]
        return {"runs": len(every), "failed": len(every),
                "error": next((e for e in errors if e is not None), None)}
    med = ok[lower_median_index(len(ok))]
    low, high, centre = ok[0][metric], ok[-1][metric], med[metric]
    other = med["cpu_other_processes_seconds"] / med["seconds"] * 100
    return {**med,
            "runs": len(every),
            "failed": len(every) - len(ok),
            "not_eof": sum(1 for r in ok if r.get("close") not in (None, "eof")),
            "min": low,
            "max": high,
            "spread_percent": spread_percent(low, high, centre),
            "other_processes_percent_of_a_core": other,
            "noisy": other > noise_pct,
            "unsteady": spread_percent(low, high, max(centre, 1e-9)) > spread_pct}


def dig(obj, *keys):
    """obj[k1][k2]..., or None where a level is missing."""
    for k in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(k)
    return obj


def vs_copy(entry, copy):
    if entry["mode"] in ("direct", "copy") or copy is None:
        return None
    pairs = {"bulk_mib_per_s": ("bulk", "mib_per_s"),
             "cpu_seconds_per_gib": ("bulk", "cpu_seconds_per_gib"),
             "messages_per_cpu_second": ("msgs", "messages_per_cpu_second"),
             "messages_per_s": ("msgs", "messages_per_s")}
    return {k: ratio(dig(entry, *p), dig(copy, *p)) for k, p in pairs.items()}


def splice_results(records, modes, noise_pct, spread_pct):
    """Per mode: the bulk and msgs cells, the strategies the agent reported, and the ratios
    against direct and against copy."""
    out = []
    for m in modes:
        runs = [r for r in records if r.get("bench_mode") == m]
        strategies = {dig(r, "splice_state", "strategy") for r in runs}
        out.append({"mode": m,
                    "bulk": splice_cell(runs, "bulk", noise_pct, spread_pct),
                    "msgs": splice_cell(runs, "msgs", noise_pct, spread_pct),
                    "strategies": sorted(s for s in strategies if s)})
    direct = next((e for e in out if e["mode"] == "direct"), None)
    copy = next((e for e in out if e["mode"] == "copy"), None)
    for e in out:
        e["bulk_vs_direct"] = ratio(dig(e, "bulk", "mib_per_s"), dig(direct, "bulk", "mib_per_s"))
        e["msgs_vs_direct"] = ratio(dig(e, "msgs", "messages_per_s"),
                                    dig(direct, "msgs", "messages_per_s"))
        e["vs_copy"] = vs_copy(e, copy)
    return out


# The issue's targets for the strategy auto picks, against copy.
SPLICE_TARGETS = (("bulk_mib_per_s", ">= 1.1", lambda r: r >= 1.1),
                  ("cpu_seconds_per_gib", "<= 0.6", lambda r: r <= 0.6),
                  ("messages_per_cpu_second", ">= 2", lambda r: r >= 2))


def splice_targets(results):
    auto = next((e for e in results if e["mode"] == "auto"), None)
    if auto is None or auto["vs_copy"] is None:
        return None
    out = {}
    for key, target, met in SPLICE_TARGETS:
        r = auto["vs_copy"][key]
        out[key] = {"ratio": r, "target": target, "met": r is not None and met(r)}
    return out


def auto_picked(results):
    auto = next((e for e in results if e["mode"] == "auto"), None)
    if auto is None:
        return ""
    return ", ".join(auto["strategies"]) or "unknown"


def splice_thresholds(settings):
    return settings.get("noise_percent", 10), settings.get("spread_percent", 15)


# ---------------------------------------------------------------------------------------------
# Kernel splice: Markdown


def splice_intro(meta):
    st = meta["settings"]
    sched = sched_desc(st)
    b = st["bulk_bytes"]
    bulk = (f"{b / 2**30:g} GiB" if b >= 2**30 else f"{b / 2**20:g} MiB" if b >= 2**20
            else f"{b} bytes")
    return [
        SPLICE_BEGIN, "## Kernel splice on TCP routes: latest results", "",
        f"Generated by `bench/splice.sh` on {meta['date']} at commit `{meta['git']}` (load average"
        f" at start: {meta['machine']['loadavg_at_start']}) with:", "",
        "```sh", meta["command"], "```", "",
        "Bytes over a plain TCP route (tcp-services ConfigMap \u2192 Service \u2192 EndpointSlice)"
        " on loopback:",
        "`direct` is the client connecting straight to the server; the other rows go through",
        f"`ingress-agent --splice=<mode> --workers {st['agent_workers']}` pinned to core "
        f"{st['proxy_cpu']}. Client and server are one",
        f"`sluice-flowbench` process pinned to core {st['client_cpu']}"
        f"{', both at ' + sched if sched else ''}; a fresh agent per run.",
        f"**bulk**: one connection, {bulk} client \u2192 server, timed from the first write to"
        " the",
        "last byte received, count and content checked. **msgs**: "
        f"{st['msg_connections']} connections ping-ponging",
        f"{st['msg_bytes']}-byte messages for {plain(st['msg_seconds'])} s after a "
        f"{plain(st['msg_warmup_seconds'])} s warm-up; **msgs/s counts both directions: one round"
        " trip",
        "= 2 messages**. **CPU** is the whole machine's busy time (/proc/stat"
        " user+nice+system+irq+softirq+steal, all",
        "cores) over the measured interval, so kernel threads, workqueues and softirq count, not"
        " only the",
        f"agent. Each cell is the median of {st['repeat']} run(s), interleaved; all runs are in"
        " `bench/results/splice-latest.json`.", "",
    ]


def flag_cell(value, cell, with_reset):
    """A value with the cell's flags: noise, spread, failed runs, streams reset at the end."""
    s = value
    if cell.get("noisy") is True:
        s += f" {WARN}noise"
    if cell.get("unsteady") is True:
        s += f" {WARN}spread"
    if cell.get("failed"):
        s += f" {WARN}{cell['failed']}/{cell['runs']} failed"
    if with_reset and cell.get("not_eof"):
        s += f" {WARN}{cell['not_eof']} reset"
    return s


def splice_main_table(results, picked):
    lines = [
        "| mode | bulk MiB/s | vs direct | CPU s/GiB | msgs/s (2 per round trip) | msgs per CPU-s"
        " | vs copy: MiB/s | vs copy: CPU s/GiB | vs copy: msgs per CPU-s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for e in results:
        bulk, msgs, vc = e["bulk"], e["msgs"], e["vs_copy"] or {}
        label = f"auto (\u2192 {picked})" if e["mode"] == "auto" else e["mode"]
        cells = [
            label,
            flag_cell(fmt(".0f", bulk.get("mib_per_s")), bulk, True),
            ratio_cell(e["bulk_vs_direct"]),
            fmt(".3f", bulk.get("cpu_seconds_per_gib")),
            flag_cell(fmt(".0f", msgs.get("messages_per_s")), msgs, False),
            fmt(".0f", msgs.get("messages_per_cpu_second")),
            ratio_cell(vc.get("bulk_mib_per_s")),
            ratio_cell(vc.get("cpu_seconds_per_gib")),
            ratio_cell(vc.get("messages_per_cpu_second")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def splice_target_lines(modes, picked, targets):
    if "auto" not in modes:
        return []
    lines = [f"**auto picked: `{picked}`** (`splice.strategy` in the agent's `/debug/state`, read"
             " after each auto run)."]
    if targets is not None:
        def one(key, label):
            t = targets[key]
            met = "met" if t["met"] else "**not met**"
            return f"{label} {t['target']}: {ratio_cell(t['ratio'])} ({met})"
        lines += [f"Targets, auto vs copy: {one('bulk_mib_per_s', 'bulk MiB/s')}; "
                  f"{one('cpu_seconds_per_gib', 'CPU s/GiB')};",
                  f"{one('messages_per_cpu_second', 'small messages per CPU-second')}."]
    return lines + [""]


def splice_fallback_lines(results):
    """A strategy that ran as something other than what was asked for."""
    lines = []
    for e in results:
        ran = ", ".join(e["strategies"])
        if e["mode"] not in ("direct", "auto") and ran and ran != e["mode"]:
            lines += [f"{WARN} `--splice={e['mode']}` ran as `{ran}` according to /debug/state.",
                      ""]
    return lines


def splice_cpu_table(results, noise_pct):
    lines = [
        "Where the CPU went in the reported runs (CPU-seconds over the measured interval; \"rest\""
        " is",
        "interrupt and softirq time not charged to any task; \"other %\" is unrelated processes,"
        " as % of a",
        f"core, flagged {WARN}noise above {noise_pct}%):", "",
        "| mode | workload | seconds | all CPU s | agent | flowbench | kernel threads | rest |"
        " other % |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    keys = ("seconds", "cpu_seconds", "cpu_proxy_seconds", "cpu_self_seconds",
            "cpu_kernel_threads_seconds", "cpu_unattributed_seconds")
    for e in results:
        for w in ("bulk", "msgs"):
            cells = [e["mode"], w] + [fmt(".2f", e[w].get(k)) for k in keys]
            cells.append(fmt(".0f", e[w].get("other_processes_percent_of_a_core")))
            lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def splice_failure_lines(records, modes):
    failed = [r for r in records if r.get("ok") is not True]
    lines = []
    if failed:
        order = {m: i for i, m in enumerate(modes)}
        failed.sort(key=lambda r: (order.get(r.get("bench_mode"), len(order)),
                                   r.get("mode") != "bulk", r.get("run", 0)))
        lines += [f"**{len(failed)} run(s) failed** ({WARN} n/m failed: the cell is the median of"
                  " the others); their errors:", ""]
        lines += [f"- {r.get('bench_mode')} {r.get('mode')} run {r.get('run')}: "
                  f"{r.get('error') or r.get('first_error')}" for r in failed]
        lines.append("")
    if any(r.get("ok") is True and r.get("close") not in (None, "eof") for r in records):
        lines += [f"{WARN} reset: every byte arrived, but the stream then ended with a reset"
                  " instead of an EOF.", ""]
    return lines


def splice_markdown(meta, records, results):
    st = meta["settings"]
    modes = st["modes"]
    noise_pct, _ = splice_thresholds(st)
    picked = auto_picked(results)
    lines = splice_intro(meta) + splice_main_table(results, picked)
    lines += splice_target_lines(modes, picked, splice_targets(results))
    lines += splice_fallback_lines(results)
    lines += splice_cpu_table(results, noise_pct)
    lines += splice_failure_lines(records, modes)
    lines += [machine_line(meta["machine"]),
              "Method and caveats: `bench/README.md` (*Kernel splice*).", SPLICE_END]
    return "\n".join(lines) + "\n"


def cmd_splice_report(args):
    meta, records = load_inputs(args, ("results", "all_runs", "auto_picked",
                                       "targets_auto_vs_copy"))
    st = meta.setdefault("settings", {})
    noise_pct, spread_pct = splice_thresholds(st)
    st.setdefault("noise_percent", noise_pct)
    st.setdefault("spread_percent", spread_pct)
    results = splice_results(records, st["modes"], noise_pct, spread_pct)
    if args.json:
        data = dict(meta)
        data.update({"auto_picked": auto_picked(results),
                     "targets_auto_vs_copy": splice_targets(results),
                     "results": results,
                     "all_runs": sorted(records, key=lambda r: r.get("run", 0))})
        write_text(args.json, json.dumps(plain(data), ensure_ascii=False, indent=2) + "\n")
    section = splice_markdown(meta, records, results)
    if args.doc:
        splice_section(args.doc, section, SPLICE_BEGIN, SPLICE_END, "# Benchmarks\n")
    lines = section.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("| mode | bulk"))
    shown = lines[start:lines.index("", start)]
    shown += [l for l in lines if l.startswith(("**auto picked", "Targets", "small"))]
    print("\n".join(shown))
    return 0


# ---------------------------------------------------------------------------------------------
# Command line


def pair(text):
    busy, _, total = text.partition(",")
    return [int(busy), int(total)]


def add_report_inputs(p, result_name):
    p.add_argument("--meta", help="META.json written by `report.py meta`")
    p.add_argument("--records", help="RUNS.jsonl written by the record command")
    p.add_argument("--from", dest="source", metavar="JSON",
                   help=f"regenerate from an earlier {result_name} instead")
    p.add_argument("--json", help=f"write {result_name} here")
    p.add_argument("--doc", help="replace the marked section of this Markdown file")


def conns_label(text):
    """wrk's connection count as an int, or an idle-workload label kept as text."""
    return int(text) if text.isdigit() else text


def add_http_record(sub):
    p = sub.add_parser("http-record", help="one run.sh run -> one JSON line")
    p.add_argument("out", help="RUNS.jsonl to append to")
    p.add_argument("--wrk", required=True, help="wrk --latency output of the measured run")
    p.add_argument("--proxy", required=True)
    p.add_argument("--conns", type=conns_label, required=True,
                   help="wrk's connections, or a label such as 16+10000idle")
    p.add_argument("--run", type=int, required=True)
    p.add_argument("--raw-path", required=True, help="the wrk output as the report names it")
    p.add_argument("--idle", type=int, help="idle keep-alive connections held during the run")
    p.add_argument("--rss-base-kib", type=int,
                   help="VmRSS of the proxy before the idle connections opened")
    p.add_argument("--clk-tck", type=int, required=True)
    p.add_argument("--started", type=float, required=True, help="epoch seconds")
    p.add_argument("--ended", type=float, required=True, help="epoch seconds")
    for name in ("proxy", "origin", "wrk"):
        p.add_argument(f"--{name}-ticks", type=int, required=True,
                       help=f"utime+stime of the {name} over the measured run")
    p.add_argument("--rss-kib", type=int, required=True, help="VmHWM of the proxy's processes")
    for name in ("proxy-core", "client-core", "both-cores"):
        p.add_argument(f"--{name}", type=pair, required=True, metavar="BUSY,TOTAL",
                       help="jiffies from /proc/stat over the measured run")
    p.set_defaults(func=cmd_http_record)


def add_splice_record(sub):
    p = sub.add_parser("splice-record", help="one splice.sh run -> one JSON line")
    p.add_argument("out", help="RUNS.jsonl to append to")
    p.add_argument("--mode", required=True, help="direct, sockmap, pipe, copy or auto")
    p.add_argument("--workload", required=True, choices=sorted(SPLICE_METRIC))
    p.add_argument("--run", type=int, required=True)
    p.add_argument("--flowbench", required=True, help="flowbench's stdout")
    p.add_argument("--stderr", help="flowbench's stderr, quoted when there is no result")
    p.add_argument("--rc", type=int, default=0, help="flowbench's exit status")
    p.add_argument("--state", help="the agent's /debug/state after the run, if any")
    p.set_defaults(func=cmd_splice_record)


def parser():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command_name", required=True)
    p = sub.add_parser("meta", help="what is the same for every run -> META.json")
    p.add_argument("--out", required=True, help="META.json to write")
    p.add_argument("--command", required=True, help="the command line, as typed")
    p.add_argument("--repo", default=".", help="the git work tree (for the commit)")
    p.add_argument("assignments", nargs="*", metavar="KEY=TEXT|KEY:=JSON")
    p.set_defaults(func=cmd_meta)
    add_http_record(sub)
    p = sub.add_parser("http-report", help="runs -> latest.json and the Markdown tables")
    add_report_inputs(p, "latest.json")
    p.set_defaults(func=cmd_http_report)
    add_splice_record(sub)
    p = sub.add_parser("splice-report", help="runs -> splice-latest.json and Markdown")
    add_report_inputs(p, "splice-latest.json")
    p.set_defaults(func=cmd_splice_report)
    return ap


def main(argv=None):
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
