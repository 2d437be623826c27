#!/usr/bin/env python3
"""What failed in a run of scripts/test.sh, short enough to read in the last screen of a CI log.

    scripts/failures.py LABEL=LOG ...

A CI system often keeps only the tail of a long log, and the tail of ours is the summary: counts
per tier, not names. This prints, for each tier's log, the tests that failed and, for a ctest
tier, the lines of each failed test's output that say why (GoogleTest's "file:line: Failure" and
what follows it; otherwise the output's last lines: a crash or a timeout says nothing else).
"""
import re
import sys

PER_TEST = 12  # lines of one failed test's output
MAX_TESTS = 4  # failed tests shown in full per tier; the others by name only

STATUS = re.compile(r"^\s*\d+/\d+ Test +#\d+: (\S+) .*?\*\*\*(.*?)\s+[\d.]+ sec$")
NEXT = re.compile(r"^\s*(\d+/\d+ Test +#\d+:|Start +\d+:|\d+% tests passed|The following tests)")
SCRIPT_FAIL = re.compile(r"(: FAIL |FAILED:)")


def why(lines):
    """The lines of a failed test's output that say why it failed."""
    out = []
    for i, line in enumerate(lines):
        if line.rstrip().endswith(": Failure"):
            out.extend(lines[i:i + 6])
    if not out:
        out = lines[-PER_TEST:]
    return [l for l in out if l.strip()][:PER_TEST]


def ctest_failures(lines):
    found = []  # (name, status, why)
    i = 0
    while i < len(lines):
        m = STATUS.match(lines[i])
        i += 1
        if not m or m.group(2) in ("Skipped", "Not Run"):
            continue
        body = []
        while i < len(lines) and not NEXT.match(lines[i]):
            body.append(lines[i])
            i += 1
        found.append((m.group(1), m.group(2), why(body)))
    return found


def main(args):
    printed = False
    for arg in args:
        label, _, path = arg.partition("=")
        try:
            with open(path, errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        failures = ctest_failures(lines)
        if failures:
            printed = True
            for n, (name, status, body) in enumerate(failures):
                print(f"FAILED {label}: {name} ({status})")
                if n < MAX_TESTS:
                    print("".join(f"    {l[:160]}\n" for l in body), end="")
            continue
        script = [l for l in lines if SCRIPT_FAIL.search(l)]
        for l in script[:3 * MAX_TESTS]:
            printed = True
            print(f"FAILED {label}: {l.strip()[:200]}")
    return 0 if printed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
