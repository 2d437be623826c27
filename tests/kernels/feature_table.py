#!/usr/bin/env python3
"""Kernel x feature table of a kernel-matrix run (tests/kernels/run.sh), as Markdown.

  feature_table.py RUN_DIR LABEL...

Every cell comes from the files the payload wrote under RUN_DIR/LABEL/: `features` (probe facts),
`tests` (per-test and per-check outcomes) and `results` (group lines). A cell whose evidence is
missing (the group did not run, the guest died) says so instead of guessing.
"""

import os
import sys


def load(run_dir, label):
    d = os.path.join(run_dir, label)
    features, tests, results = {}, {}, {}

    def lines(name):
        try:
            with open(os.path.join(d, name), errors="replace") as f:
                return [l.rstrip("\n") for l in f if l.strip()]
        except OSError:
            return []

    for l in lines("features"):
        key, _, value = l.partition(" ")
        features[key] = value
    for l in lines("tests"):
        group, _, rest = l.partition(" ")
        test, _, status = rest.rpartition(" ")
        tests[(group, test)] = status
    for l in lines("results"):
        parts = l.split(" ", 4)
        if len(parts) >= 4:
            results[parts[0]] = (int(parts[1]), int(parts[2]), int(parts[3]))
    return features, tests, results


def outcome(tests, group, names):
    """'yes' when every named test/check of group passed, else why not."""
    got = [tests.get((group, n)) for n in names]
    if not got or any(g is None for g in got):
        return "not run"
    bad = [n for n, g in zip(names, got) if g != "ok"]
    if not bad:
        return "yes"
    if len(names) == 1:
        return "no (skipped)" if got[0] == "SKIPPED" else "no"
    # gtest names lose their suite ("SpliceTest."), check names stay whole
    short = [b.split(".", 1)[1] if b.count(".") == 1 and " " not in b else b for b in bad]
    return "no (%s failed)" % ", ".join(short)


def find(tests, group, prefix):
    return [t for (g, t) in tests if g == group and t.startswith(prefix)]


def rows(features, tests, results):
    f = lambda k: features.get(k, "not run")

    def agent(mode, variant, prefixes):
        group = "agent-%s[%s]" % (mode, variant)
        names = [t for p in prefixes for t in find(tests, group, p)]
        return outcome(tests, group, names)

    # The agent runs with exactly the DaemonSet's capabilities (root adds nothing it uses).
    def daemonset(mode, prefixes):
        return agent(mode, "caps", prefixes)

    splice = ["strategy sockmap", "upgrade tunnel", "tcp route", "verdict counted redirects"]
    return [
        ("kernel", f("kernel")),
        ("BTF (/sys/kernel/btf/vmlinux)", f("btf")),
        ("lockdown", f("lockdown")),
        ("splice program verifies (root / DaemonSet caps)",
         "%s / %s" % (outcome(tests, "verify[root]", find(tests, "verify[root]", "")),
                      outcome(tests, "verify[caps]", find(tests, "verify[caps]", "")))),
        ("sockmap splice, tests/bpf",
         outcome(tests, "bpf[root]", ["SpliceTest.SplicesMebibytesBothWaysWithoutUserspace"])),
        ("sockmap splice, agent --splice=sockmap (DaemonSet caps)", daemonset("sockmap", splice)),
        ("redirect budget holds a stalled reader",
         outcome(tests, "bpf[root]", ["SpliceTest.BudgetHoldsADirectionWhoseReaderStalls"])),
        ("burst while a pair is half armed is redirected, tests/bpf (root / DaemonSet caps)",
         "%s / %s" % tuple(
             outcome(tests, "bpf[%s]" % v,
                     ["SpliceTest.ABurstWhileThePairIsHalfArmedIsRedirectedNotParked"])
             for v in ("root", "caps"))),
        ("programs attached to a sockmap listed (BPF_PROG_QUERY)",
         outcome(tests, "bpf[root]", ["SpliceTest.TheVerdictIsAttachedToTheVerdictSockhashOnly"])),
        ("ingressctl status names the verdict (DaemonSet caps)",
         daemonset("sockmap", ["status names the attached verdict"])),
        ("ingressctl flows shows the live flow (DaemonSet caps)",
         daemonset("sockmap", ["flows show the tunnel"])),
        ("pipe: splice(2) socket-pipe-socket", f("pipe")),
        ("pipe: agent --splice=auto, tcp route (DaemonSet caps)",
         daemonset("auto", ["tcp route"])),
        ("without CAP_PERFMON: agent falls back to splice(2) and serves",
         agent("sockmap", "noperfmon", ["falls back", "upgrade tunnel", "tcp route"])),
        ("without CAP_PERFMON: agent names the verifier's reason",
         agent("sockmap", "noperfmon", ["fallback reason consistent",
                                        "fallback names the verifier's reason"])),
        ("without CAP_PERFMON: tests/bpf skip with the reason (skipped / failed)",
         "%d / %d" % results.get("bpf[noperfmon]", (0, 0, 0))[2:0:-1]
         if "bpf[noperfmon]" in results else "not run"),
        ("kTLS: modprobe tls", f("ktls_module")),
        ("kTLS: TCP_ULP \"tls\"", f("ktls_ulp")),
        ("XDP native (xdpdrv) on veth", f("xdp_native_veth")),
        ("XDP generic (xdpgeneric) on veth", f("xdp_generic_veth")),
        ("XDP native on lo", f("xdp_native_lo")),
        ("XDP generic on lo", f("xdp_generic_lo")),
        ("raw SYN cookie helpers (bpf_tcp_raw_*_syncookie_ipv4)", f("syncookie_raw")),
        ("XDP front door verdicts, tests/bpf (root / DaemonSet caps)",
         "%s / %s" % tuple(
             outcome(tests, "xdp[%s]" % v, [t for t in find(tests, "xdp[%s]" % v, "XdpFrontdoorTest.")
                                            if "SynProxy" not in t])
             for v in ("root", "caps"))),
        ("XDP SYN-cookie handshake, tests/bpf (root)",
         outcome(tests, "xdp[root]",
                 ["XdpSynCookieTest.FullQueueAfterAnOverflowGetsACookieThatItsAckRedeems"])),
        ("XDP front door with the agent, generic XDP on veth (root)",
         outcome(tests, "xdp_netns[root]", find(tests, "xdp_netns[root]", ""))),
        ("splice program without CAP_PERFMON", f("splice_noperfmon")),
        ("direct BTF read of tcp_sock.write_seq (root)", f("tcp_sock_direct_read")),
        ("direct BTF read of tcp_sock.write_seq (DaemonSet caps)", f("tcp_sock_direct_read_caps")),
        ("direct BTF read of tcp_sock.write_seq without CAP_PERFMON",
         f("tcp_sock_direct_read_noperfmon")),
    ]


def cell(text):
    return text.replace("|", "\\|")


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    run_dir, labels = argv[1], argv[2:]
    columns = [rows(*load(run_dir, label)) for label in labels]
    print("| feature | " + " | ".join(labels) + " |")
    print("|---|" + "---|" * len(labels))
    for i, (name, _) in enumerate(columns[0]):
        print("| %s | %s |" % (name, " | ".join(cell(col[i][1]) for col in columns)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
