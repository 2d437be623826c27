#!/usr/bin/env python3
"""Tests of bench/report.py on fixed records: python3 bench/test_report.py (standard library only;
no benchmark has to run)."""

import io
import json
import os
import sys
import tempfile
import unittest
from contextlib import redirect_stdout

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)

WRK_OUTPUT = """Running 2s test @ http://127.0.0.1:12345/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   812.00us  300.00us  12.00ms   90.00%
  Latency Distribution
     50%  674.00us
     75%  900.00us
     90%    1.10ms
     99%    1.02s
  158612 requests in 2.00s, 180.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 12
  Non-2xx or 3xx responses: 5
Requests/sec:  79304.19
Transfer/sec:     90.00MB
"""


def samples(**over):
    """Samples of one 10 s run at 100 ticks/s: the proxy used 9.5 s, the origin 3.8 s."""
    s = {"proxy": "sluice", "connections": 64, "run": 1, "raw": "raw/sluice-c64-r1.txt",
         "clk_tck": 100, "wall_seconds": 10.0, "proxy_ticks": 950, "origin_ticks": 380,
         "wrk_ticks": 500, "rss_kib": 8500, "proxy_core": [960, 1000],
         "client_core": [970, 1000], "both_cores": [1900, 2000]}
    s.update(over)
    return s


def wrk(rps, requests=800000):
    return {"requests_per_sec": rps, "p50_ms": 0.7, "p99_ms": 31.0, "requests": requests,
            "socket_errors": 0, "socket_error_detail": "none", "non_2xx_3xx": 0}


def http_runs(rps_and_ticks):
    """One record per (req/s, proxy ticks, origin ticks), runs numbered from 1."""
    return [report.http_run_record(wrk(rps), samples(run=i + 1, proxy_ticks=p, origin_ticks=o))
            for i, (rps, p, o) in enumerate(rps_and_ticks)]


class Statistics(unittest.TestCase):
    def test_median(self):
        self.assertEqual(report.median([3, 1, 2]), 2)
        self.assertEqual(report.median([4, 1, 3, 2]), 2.5)
        self.assertEqual(report.median([None, 5]), 5)
        self.assertIsNone(report.median([]))

    def test_lower_median_index(self):
        self.assertEqual([report.lower_median_index(n) for n in (1, 2, 3, 4)], [0, 0, 1, 1])

    def test_spread_percent(self):
        self.assertAlmostEqual(report.spread_percent(90, 110, 100), 20.0)
        self.assertEqual(report.spread_percent(0, 5, 0), 0.0)

    def test_ratio(self):
        self.assertEqual(report.ratio(3, 2), 1.5)
        self.assertIsNone(report.ratio(None, 2))
        self.assertIsNone(report.ratio(3, 0))

    def test_fixed_rounds_like_printf(self):
        self.assertEqual(report.fixed(9.5, 2), 9.5)
        self.assertEqual(report.fixed(1.2345, 3), 1.234)  # binary 1.23449999...
        self.assertEqual(report.fixed(95.4, 0), 95)
        self.assertIsInstance(report.fixed(95.4, 0), int)


class Wrk(unittest.TestCase):
    def test_parse(self):
        w = report.parse_wrk(WRK_OUTPUT)
        self.assertEqual(w["requests_per_sec"], 79304.19)
        self.assertEqual(w["p50_ms"], 0.674)
        self.assertEqual(w["p99_ms"], 1020)
        self.assertEqual(w["requests"], 158612)
        self.assertEqual(w["socket_errors"], 14)
        self.assertEqual(w["socket_error_detail"], "connect 0, read 2, write 0, timeout 12")
        self.assertEqual(w["non_2xx_3xx"], 5)

    def test_parse_clean_run(self):
        text = "\n".join(l for l in WRK_OUTPUT.splitlines()
                         if "Socket errors" not in l and "Non-2xx" not in l)
        w = report.parse_wrk(text)
        self.assertEqual((w["socket_errors"], w["non_2xx_3xx"]), (0, 0))
        self.assertEqual(w["socket_error_detail"], "none")

    def test_errors_cell(self):
        r = report.parse_wrk(WRK_OUTPUT)
        self.assertEqual(report.errors_cell(r),
                         "\u26a0 19 (socket: connect 0/read 2/write 0/timeout 12;non-2xx/3xx: 5)")
        self.assertEqual(report.errors_cell(wrk(1)), "0")


class HttpRecord(unittest.TestCase):
    def test_derived_figures(self):
        r = report.http_run_record(wrk(80000, requests=800000), samples())
        self.assertEqual(r["proxy_cpu_seconds"], 9.5)
        self.assertEqual(r["cpu_seconds_per_100k_requests"], 1.188)  # 9.5 / 800000 * 1e5
        self.assertEqual(r["origin_cpu_seconds"], 3.8)
        self.assertEqual(r["origin_cpu_seconds_per_100k_requests"], 0.475)
        self.assertEqual(r["cpu_vs_origin"], 2.5)  # 950 / 380 ticks for the same requests
        self.assertEqual(r["proxy_cpu_percent"], 95)
        self.assertEqual(r["proxy_core_busy_percent"], 96)
        self.assertEqual(r["client_core_busy_percent"], 97)
        # (1900 - 950 - 380 - 500) busy jiffies not ours, of 2000 over two cores: 7 % of one core
        self.assertEqual(r["other_processes_cpu_percent"], 7)
        self.assertEqual(r["peak_rss_mib"], 8.3)

    def test_no_origin_cpu_means_no_ratio(self):
        r = report.http_run_record(wrk(80000), samples(origin_ticks=0))
        self.assertIsNone(r["cpu_vs_origin"])

    def test_other_processes_never_negative(self):
        r = report.http_run_record(wrk(80000), samples(both_cores=[1500, 2000]))
        self.assertEqual(r["other_processes_cpu_percent"], 0)

    def test_record_command_appends_one_line(self):
        with tempfile.TemporaryDirectory() as d:
            out, wrk_file = os.path.join(d, "runs.jsonl"), os.path.join(d, "wrk.txt")
            with open(wrk_file, "w", encoding="utf-8") as f:
                f.write(WRK_OUTPUT)
            argv = ["http-record", out, "--wrk", wrk_file, "--proxy", "nginx", "--conns", "64",
                    "--run", "2", "--raw-path", "raw/x.txt", "--clk-tck", "100", "--started",
                    "100.0", "--ended", "102.0", "--proxy-ticks", "190", "--origin-ticks", "95",
                    "--wrk-ticks", "100", "--rss-kib", "2048", "--proxy-core", "190,200",
                    "--client-core", "195,200", "--both-cores", "385,400"]
            for _ in range(2):
                with redirect_stdout(io.StringIO()) as log:
                    self.assertEqual(report.main(argv), 0)
            self.assertIn("nginx c=64 run 2: 79304.19 req/s", log.getvalue())
            records = report.read_records(out)
            self.assertEqual(len(records), 2)
            self.assertEqual(records[0]["cpu_vs_origin"], 2.0)
            self.assertEqual(records[0]["samples"]["both_cores"], [385, 400])


class HttpRows(unittest.TestCase):
    def test_median_run_range_and_origin_ratio(self):
        # req/s 70k, 90k, 80k: the 80k run (run 3) is reported. Its own CPU / origin is 3.0,
        # but the column is the median of the three runs' ratios: 2.0, 4.0, 3.0 -> 3.0.
        runs = http_runs([(70000, 800, 400), (90000, 800, 200), (80000, 900, 300)])
        row = report.http_row(runs, noise_pct=10)
        self.assertEqual(row["run"], 3)
        self.assertEqual(row["requests_per_sec_min"], 70000)
        self.assertEqual(row["requests_per_sec_max"], 90000)
        self.assertEqual(row["requests_per_sec_spread_percent"], 25)  # 20k of the median 80k
        self.assertEqual(row["cpu_vs_origin_median"], 3.0)
        self.assertEqual((row["cpu_vs_origin_min"], row["cpu_vs_origin_max"]), (2.0, 4.0))
        self.assertEqual(row["runs"], 3)

    def test_even_count_reports_lower_run_and_mean_ratio(self):
        runs = http_runs([(80000, 800, 400), (70000, 900, 300)])
        row = report.http_row(runs, noise_pct=10)
        self.assertEqual(row["requests_per_sec"], 70000)
        self.assertEqual(row["cpu_vs_origin_median"], 2.5)  # (2.0 + 3.0) / 2

    def test_ratio_is_per_pass_not_ratio_of_medians(self):
        # Medians of proxy and origin CPU taken separately would give 900 / 300 = 3.0.
        runs = http_runs([(1, 900, 450), (2, 1000, 300), (3, 600, 150)])
        self.assertEqual(report.http_row(runs, 10)["cpu_vs_origin_median"], 3.333)

    def test_noise_flags(self):
        noisy = report.http_run_record(wrk(1), samples(both_cores=[1990, 2000]))  # 16 %
        self.assertTrue(report.http_entry(noisy, 10)["noisy"])
        self.assertFalse(report.http_entry(noisy, 60)["noisy"])
        self.assertEqual(report.http_thresholds({"scheduling": "SCHED_FIFO 10"}), (60, 15))
        self.assertEqual(report.http_thresholds({"scheduling": "default"}), (10, 15))
        self.assertEqual(report.http_thresholds({"noise_percent": 5}), (5, 15))

    def test_row_flagged_on_spread_only_with_repeats(self):
        row = report.http_row(http_runs([(70000, 800, 400), (90000, 800, 200)]), 10)
        self.assertEqual(row["other_processes_cpu_percent"], 20)  # (1900 - 1700) / 2000 x 200
        self.assertTrue(report.http_row_noisy(row, 30, 15, repeat=2))
        self.assertFalse(report.http_row_noisy(row, 30, 15, repeat=1))
        self.assertTrue(report.http_row_noisy(row, 10, 15, repeat=1))

    def test_groups_keep_first_seen_order(self):
        a = http_runs([(1, 1, 1)])[0]
        b = dict(a, proxy="nginx")
        c = dict(a, connections=1000)
        self.assertEqual(list(report.http_groups([a, b, c, dict(a, run=2)])),
                         [("sluice", 64), ("nginx", 64), ("sluice", 1000)])


class HttpMarkdown(unittest.TestCase):
    META = {"date": "2026-01-01 00:00 UTC", "command": "bench/run.sh", "git": "abc1234",
            "machine": {"nproc": 2, "cpu": "CPU", "kernel": "Linux 6 x86_64",
                        "memory": "1.0 GiB", "virtualization": "unknown",
                        "loadavg_at_start": "0.00 0.00 0.00"},
            "versions": {"nginx": "nginx/1", "haproxy": "haproxy 2", "caddy": "caddy 2",
                         "wrk": "wrk 4"},
            "settings": {"duration": "2s", "warmup": "0", "wrk_threads": 1, "repeat": 2,
                         "proxy_cpu": 0, "client_cpu": 1, "scheduling": "default"}}

    def test_origin_column_only_with_origin_data(self):
        runs = http_runs([(80000, 800, 400), (70000, 900, 300)])
        md = report.http_markdown(self.META, report.http_rows(self.META, runs))
        self.assertIn("| CPU s per 100k req | CPU \u00f7 origin | peak RSS MiB |", md)
        self.assertIn("| 1.12 | 2.50 | 8.3 | 0 |", md)
        self.assertIn("| CPU \u00f7 origin over runs |", md)
        self.assertIn("| 2.00\u20133.00 |", md)
        for r in runs:
            for k in ("origin_cpu_seconds", "origin_cpu_seconds_per_100k_requests",
                      "cpu_vs_origin"):
                del r[k]
        md = report.http_markdown(self.META, report.http_rows(self.META, runs))
        self.assertNotIn("origin |", md)

    def test_idle_table_gives_the_median_cost_of_an_idle_connection(self):
        runs = http_runs([(80000, 800, 400), (70000, 900, 300), (75000, 850, 350)])
        for r, kib in zip(runs, (4.0, 5.0, 4.5)):
            r.update(connections="16+1000idle", idle_connections=1000,
                     rss_before_idle_mib=10.0, idle_kib_per_connection=kib)
        md = report.http_markdown(self.META, report.http_rows(self.META, runs))
        self.assertIn("| sluice | 1000 | 10.0 | 8.3 | 4.50 | 4.00\u20135.00 |", md)
        plain = report.http_markdown(self.META, report.http_rows(self.META, http_runs([(1, 1, 1)])))
        self.assertNotIn("Idle connections", plain)

    def test_warning_counts_flagged_rows(self):
        runs = http_runs([(80000, 800, 400), (60000, 900, 300)])  # 33 % spread
        md = report.http_markdown(self.META, report.http_rows(self.META, runs))
        self.assertIn("**Warning:** 1 of 1 rows are flagged", md)
        self.assertIn("(33%) \u26a0 |", md)


def flow(workload, mode, run, metric, ok=True, **extra):
    r = {"ok": ok, "mode": workload, "bench_mode": mode, "run": run, "seconds": 2.0,
         "cpu_other_processes_seconds": 0.1, "close": "eof",
         "cpu_seconds_per_gib": 1.0, "messages_per_cpu_second": 100.0}
    r[report.SPLICE_METRIC[workload]] = metric
    r.update(extra)
    return r


class Splice(unittest.TestCase):
    def test_cell_median_of_successful_runs(self):
        runs = [flow("bulk", "copy", 1, 1000), flow("bulk", "copy", 2, 1200),
                flow("bulk", "copy", 3, None, ok=False, error="reset"),
                flow("msgs", "copy", 1, 5)]
        cell = report.splice_cell(runs, "bulk", noise_pct=10, spread_pct=15)
        self.assertEqual(cell["run"], 1)  # lower of two
        self.assertEqual((cell["runs"], cell["failed"]), (3, 1))
        self.assertEqual((cell["min"], cell["max"]), (1000, 1200))
        self.assertAlmostEqual(cell["spread_percent"], 20.0)
        self.assertTrue(cell["unsteady"])
        self.assertAlmostEqual(cell["other_processes_percent_of_a_core"], 5.0)
        self.assertFalse(cell["noisy"])

    def test_cell_all_failed(self):
        runs = [flow("bulk", "sockmap", 1, None, ok=False, error="boom")]
        self.assertEqual(report.splice_cell(runs, "bulk", 10, 15),
                         {"runs": 1, "failed": 1, "error": "boom"})

    def test_cell_counts_resets(self):
        runs = [flow("bulk", "copy", 1, 1000, close="reset"), flow("bulk", "copy", 2, 1000)]
        self.assertEqual(report.splice_cell(runs, "bulk", 10, 15)["not_eof"], 1)

    def test_ratios_and_targets(self):
        records = []
        for mode, mib, cpu_gib, mpc in (("direct", 3000, 0.3, 200.0), ("copy", 1000, 1.0, 100.0),
                                        ("auto", 1200, 0.5, 150.0)):
            state = {"strategy": "adaptive"} if mode == "auto" else None
            records.append(flow("bulk", mode, 1, mib, cpu_seconds_per_gib=cpu_gib,
                                splice_state=state))
            records.append(flow("msgs", mode, 1, 10.0, messages_per_cpu_second=mpc))
        results = report.splice_results(records, ["direct", "copy", "auto"], 10, 15)
        auto = results[2]
        self.assertEqual(auto["strategies"], ["adaptive"])
        self.assertAlmostEqual(auto["bulk_vs_direct"], 0.4)
        self.assertAlmostEqual(auto["vs_copy"]["bulk_mib_per_s"], 1.2)
        self.assertIsNone(results[1]["vs_copy"])
        targets = report.splice_targets(results)
        self.assertTrue(targets["bulk_mib_per_s"]["met"])
        self.assertTrue(targets["cpu_seconds_per_gib"]["met"])
        self.assertFalse(targets["messages_per_cpu_second"]["met"])
        self.assertEqual(report.auto_picked(results), "adaptive")

    def test_record_without_result(self):
        with tempfile.TemporaryDirectory() as d:
            out, err = os.path.join(d, "out"), os.path.join(d, "err")
            open(out, "w").close()
            with open(err, "w") as f:
                f.write("a\nb\nc\nd\n")
            r = report.flowbench_result(out, err, 1, "msgs")
            self.assertEqual(r, {"ok": False, "mode": "msgs",
                                 "error": "flowbench exited 1 without a result: b\nc\nd"})


class Documents(unittest.TestCase):
    def test_section_replaced_text_around_kept(self):
        with tempfile.TemporaryDirectory() as d:
            doc = os.path.join(d, "doc.md")
            with open(doc, "w") as f:
                f.write("head\n<!-- a:begin -->\nold\n<!-- a:end -->\ntail\n")
            report.splice_section(doc, "<!-- a:begin -->\nnew\n<!-- a:end -->\n",
                                  "<!-- a:begin", "<!-- a:end", "")
            with open(doc) as f:
                self.assertEqual(f.read(), "head\n<!-- a:begin -->\nnew\n<!-- a:end -->\ntail\n")

    def test_section_appended_without_markers(self):
        with tempfile.TemporaryDirectory() as d:
            doc = os.path.join(d, "new", "doc.md")
            report.splice_section(doc, "S\n", "<!-- b", "<!-- e", "# T\n")
            with open(doc) as f:
                self.assertEqual(f.read(), "# T\n\nS\n")

    def test_assignments(self):
        meta = {}
        for a in ("date=x=y", "settings.repeat:=3", "settings.modes:=[\"copy\"]"):
            report.assign(meta, a)
        self.assertEqual(meta, {"date": "x=y", "settings": {"repeat": 3, "modes": ["copy"]}})

    def test_meta_command(self):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "meta.json")
            argv = ["meta", "--out", out, "--command", "bench/run.sh", "--repo", REPO,
                    "versions.wrk=wrk 4", "settings.repeat:=2"]
            self.assertEqual(report.main(argv), 0)
            with open(out) as f:
                meta = json.load(f)
        self.assertEqual(list(meta), ["date", "command", "git", "machine", "versions", "settings"])
        self.assertEqual(meta["settings"], {"repeat": 2})
        self.assertGreaterEqual(meta["machine"]["nproc"], 1)

    def committed_section(self, begin, end):
        with open(os.path.join(REPO, "docs", "benchmarks.md"), encoding="utf-8") as f:
            text = f.read()
        start = text.find(begin)
        if start < 0:
            self.skipTest("no such section in docs/benchmarks.md")
        stop = text.index("\n", text.index(end, start)) + 1
        return text[start:stop]

    def test_committed_http_section_matches_committed_results(self):
        with open(os.path.join(BENCH, "results", "latest.json"), encoding="utf-8") as f:
            data = json.load(f)
        meta = {k: v for k, v in data.items() if k not in ("results", "all_runs")}
        rows = report.http_rows(meta, data["all_runs"])
        self.assertEqual(report.http_markdown(meta, rows),
                         self.committed_section(report.HTTP_BEGIN, report.HTTP_END))

    def test_committed_splice_section_matches_committed_results(self):
        with open(os.path.join(BENCH, "results", "splice-latest.json"), encoding="utf-8") as f:
            data = json.load(f)
        st = data["settings"]
        results = report.splice_results(data["all_runs"], st["modes"],
                                        *report.splice_thresholds(st))
        self.assertEqual(report.plain(results), data["results"])
        self.assertEqual(report.splice_markdown(data, data["all_runs"], results),
                         self.committed_section(report.SPLICE_BEGIN, report.SPLICE_END))


if __name__ == "__main__":
    unittest.main()
