#!/usr/bin/env python3
"""What the agent smoke test (groups/50-agent.sh) expects of /debug/state and ingressctl.

  agent_checks.py MODE VARIANT MIB DIR

DIR holds state.json (/debug/state after startup), status.json and flows.json
(`ingressctl status|flows -o json` while the tunnel was open) and after.json (status after all
traffic). Prints one line per check, "ok   NAME -- detail" or "FAIL NAME -- detail"; the caller
counts them (lib.sh check_lines).
One process for all checks: every Python start costs seconds under TCG.
"""

import json
import os
import sys

PINNED = "pinned by the agent (attachment not queryable)"
CANNOT_LIST = ("cannot list programs attached to sluice_socks_v3: this kernel cannot list sockmap "
               "programs (Linux < 5.19)")


def kernel_lists_sockmap_programs():
    """BPF_PROG_QUERY on a sockmap arrived in 5.19. Taken from the running kernel's version, not
    from what ingressctl says, so the check cannot agree with a wrong answer."""
    release = os.uname().release
    try:
        major, minor = (int(x) for x in release.split("-")[0].split(".")[:2])
    except ValueError:
        return True
    return (major, minor) >= (5, 19)


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        return {"__error__": "%s: %s" % (os.path.basename(path), e)}


def sockmap_checks(mode, mib, state, status, flows, after):
    expect = "adaptive" if mode == "auto" else mode
    programs = [
        (p.get("name"), p.get("type"), p.get("attach_type"), p.get("attached_to"), p.get("attached"))
        for p in status.get("programs", [])
    ]
    listed = kernel_lists_sockmap_programs()
    want_program = ("sluice_splice_v", "sk_skb", "sk_skb_stream_verdict", "sluice_socks_v3",
                    "yes" if listed else PINNED)
    want_warnings = [] if listed else [CANNOT_LIST]
    yield (
        "strategy " + expect,
        state.get("splice", {}).get("strategy") == expect,
        "splice.strategy is %r (reason: %s; bpf_error: %s)"
        % (state.get("splice", {}).get("strategy"), state.get("splice", {}).get("reason"),
           state.get("splice", {}).get("bpf_error")),
    )
    yield (
        "status names the attached verdict",
        programs == [want_program],
        "programs %r, wanted [%r]" % (programs, want_program),
    )
    yield (
        "status warns only of what the kernel cannot list",
        status.get("warnings") == want_warnings,
        "warnings %r, wanted %r" % (status.get("warnings"), want_warnings),
    )
    rows = flows if isinstance(flows, list) else []
    size = mib << 20
    tunnel = [r for r in rows if str(r.get("strategy", "")).startswith(expect)]
    yield (
        "flows show the tunnel (%s)" % expect,
        len(rows) == 1 and len(tunnel) == 1
        and tunnel[0].get("bytes_in", 0) >= size and tunnel[0].get("bytes_out", 0) >= size,
        "flows %r" % (flows,),
    )
    if mode == "sockmap":
        redirects = [v.get("count", 0) for v in after.get("verdicts", []) if v.get("reason") == "redirect"]
        yield (
            "verdict counted redirects",
            bool(redirects) and redirects[0] > 0,
            "verdicts %r" % after.get("verdicts"),
        )


def fallback_checks(state):
    splice = state.get("splice", {})
    probe = state.get("kernel_datapath", "")
    error = splice.get("bpf_error", "")
    yield ("falls back to splice(2)", splice.get("strategy") == "pipe",
           "splice.strategy is %r" % splice.get("strategy"))
    # What the probe reports and why the open failed must agree, and a fresh pin directory cannot
    # hold maps of "another layout".
    why = []
    if not error:
        why.append("no bpf_error although the datapath did not load")
    if "another layout" in error:
        why.append("blames a pinned-map layout in a fresh pin dir")
    if "attach yes" in probe or "splice program yes" in probe:
        why.append("the probe says the datapath is available")
    yield ("fallback reason consistent", not why,
           "; ".join(why) + " (probe: %r; bpf_error: %r)" % (probe, error))
    # Which feature is off and why: the verifier's words, the helper and the capability, the same
    # in the startup probe and in the error (the probe's line turns ", " into "; ").
    named = (error.startswith("the verifier refused sluice_splice_verdict: ")
             and "bpf_skc_to_tcp_sock#137" in error and "CAP_PERFMON" in error
             and "splice program no (" + error.replace(", ", "; ") + ")" in probe)
    yield ("fallback names the verifier's reason", named,
           "bpf_error %r; probe %r" % (error, probe))


def main(argv):
    if len(argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    mode, variant, mib, d = argv[1], argv[2], int(argv[3]), argv[4]
    state = load(os.path.join(d, "state.json"))
    if variant == "noperfmon":
        checks = fallback_checks(state)
    else:
        checks = sockmap_checks(
            mode, mib, state, load(os.path.join(d, "status.json")),
            load(os.path.join(d, "flows.json")), load(os.path.join(d, "after.json")),
        )
    for name, ok, why in checks:
        print("%s %s -- %s" % ("ok  " if ok else "FAIL", name, why))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
