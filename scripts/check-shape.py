#!/usr/bin/env python3
"""The code's shape, checked rather than hoped for (STYLE.md, issue 9):

- no function over 100 lines in userspace/, cli/ and bench/tools/ (the chunked decoder's
  byte-driven state machine, ChunkedDecoder::feed, is the one allowed exception);
- userspace/app/agent.cpp is wiring: at most 300 lines;
- nothing under userspace/k8s/ includes model/ (the dependency runs model -> k8s);
- no goto in C++ code; no test file over 1,000 lines.

Functions are found by brace matching on C++ source with comments and string literals blanked
out; a function is a brace block opened by a line that ends a declarator (") {", ") const {",
"-> T {") and is not a control statement. Prints every violation and exits 1 if there is one.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
MAX_FUNCTION = 100
ALLOWED_LONG = {("userspace/http/chunked.cpp", "ChunkedDecoder::feed")}
CONTROL = re.compile(r"^\s*(\}\s*)?(if|for|while|switch|catch|else|do|try)\b")
OPENS = re.compile(r"\)\s*(const\s*)?(noexcept\s*)?(override\s*)?(final\s*)?(->\s*[\w:<>,\s*&]+)?\s*\{\s*$")
NAME = re.compile(r"([~\w:]+)\s*\(")


def blank(text):
    """Comments and string/char literals replaced by spaces, newlines kept."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == 'R' and text.startswith('R"', i):
            m = re.match(r'R"([^(]*)\(', text[i:])
            end = text.find(")" + m.group(1) + '"', i) + len(m.group(1)) + 2
            out.append(re.sub(r"[^\n]", " ", text[i:end]))
            i = end
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(c + " " * (j - i - 1) + c)
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def functions(path):
    """(name, first line, length) of every function body in `path`."""
    lines = blank(path.read_text()).split("\n")
    result = []
    for start, line in enumerate(lines):
        if not OPENS.search(line) or CONTROL.match(line) or "](" in line:
            continue
        # The declarator may span lines: find the name on this line or the ones before.
        head = " ".join(lines[max(0, start - 3): start + 1])
        names = NAME.findall(head)
        name = names[0] if names else "?"
        depth = 0
        for end in range(start, len(lines)):
            depth += lines[end].count("{") - lines[end].count("}")
            if depth <= 0:
                result.append((name, start + 1, end - start + 1))
                break
    return result


def main():
    problems = []
    sources = [p for d in ("userspace", "cli", "bench/tools") for p in (ROOT / d).rglob("*.[ch]pp")]
    for path in sorted(sources):
        rel = path.relative_to(ROOT).as_posix()
        for name, line, length in functions(path):
            short = name.split("::")[-2:] if "::" in name else [name]
            if length > MAX_FUNCTION and (rel, "::".join(short)) not in ALLOWED_LONG:
                problems.append(f"{rel}:{line}: {name} has {length} lines (max {MAX_FUNCTION})")
        if re.search(r"\bgoto\b", blank(path.read_text())):
            problems.append(f"{rel}: uses goto")
    agent = ROOT / "userspace/app/agent.cpp"
    if (n := len(agent.read_text().splitlines())) > 300:
        problems.append(f"userspace/app/agent.cpp has {n} lines (max 300: it is wiring)")
    for path in sorted((ROOT / "userspace/k8s").rglob("*.[ch]pp")):
        if re.search(r'#include\s+"model/', path.read_text()):
            problems.append(f"{path.relative_to(ROOT)}: includes model/ (model -> k8s only)")
    for path in sorted((ROOT / "tests").rglob("*.[ch]pp")):
        if (n := len(path.read_text().splitlines())) > 1000:
            problems.append(f"{path.relative_to(ROOT)} has {n} lines (max 1000)")
    for p in problems:
        print(p)
    print(f"shape: {len(sources)} files checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
