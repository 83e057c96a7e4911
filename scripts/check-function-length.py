#!/usr/bin/env python3
"""Fails when a function outside the kernels is longer than LIMIT lines (default 80).

A function is read whole, its lambdas included: a handler written as a 200-line closure is one
function of 200 lines. The kernels (kernels/, their tests and benchmark) are left out: an unrolled
SIMD loop reads better whole. Heuristic C++ reading: comments and strings are blanked, and a
brace that follows a parameter list at namespace or class scope opens a function.
Usage: check-function-length.py SOURCE_DIR [LIMIT]
"""
import pathlib
import re
import sys

SKIPPED = ("kernels/", "tests/kernels/", "bench/kernels.cpp", "build", ".")


def blank(source):
    """The source with comments, strings and character literals blanked (newlines kept)."""
    out, i, n = [], 0, len(source)
    while i < n:
        if source.startswith("//", i):
            j = source.find("\n", i)
            i = n if j < 0 else j
        elif source.startswith("/*", i):
            j = source.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", source[i:j]))
            i = j
        elif source.startswith('R"', i) and re.match(r'R"[^(\s]*\(', source[i:]):
            delimiter = re.match(r'R"([^(\s]*)\(', source[i:]).group(1)
            end = ")" + delimiter + '"'
            j = source.find(end, i)
            j = n if j < 0 else j + len(end)
            out.append('""' + re.sub(r"[^\n]", " ", source[i + 2:j]))
            i = j
        elif source[i] == '"' or (source[i] == "'" and not (i and source[i - 1].isalnum())):
            quote, j = source[i], i + 1
            while j < n and source[j] != quote:
                j += 2 if source[j] == "\\" else 1
            out.append(quote + re.sub(r"[^\n]", " ", source[i + 1:j]) + quote)
            i = j + 1
        else:
            out.append(source[i])
            i += 1
    return "".join(out)


def opens_function(text, brace):
    """Whether the brace at `brace` (at namespace or class scope) opens a function body."""
    head = text[max(0, brace - 600):brace]
    statement = re.split(r"[;{}]", head)[-1]
    before = head.rstrip()
    if re.search(r"\b(namespace|class|struct|union|enum)\b", statement) and not re.search(r"\)\s*$", before):
        return False
    if re.search(r'extern\s+"C"\s*$', before) or re.search(r"=\s*$", before):
        return False
    return "(" in statement


def functions(text):
    """(first line, last line, signature) of each function body."""
    found, stack = [], []  # stack: (is_function, position) of open braces
    for m in re.finditer(r"[{}]", text):
        if m.group() == "{":
            inside = any(f for f, _ in stack)
            stack.append((not inside and opens_function(text, m.start()), m.start()))
        elif stack:
            is_function, start = stack.pop()
            if is_function:
                head = max(text.rfind(c, 0, start) for c in ";{}") + 1
                while head < start and text[head].isspace():
                    head += 1
                signature = re.sub(r"\s+", " ", text[head:start]).strip()
                found.append((text.count("\n", 0, head) + 1, text.count("\n", 0, m.start()) + 1, signature))
    return found


def main():
    root = pathlib.Path(sys.argv[1])
    limit = int(sys.argv[2]) if len(sys.argv) > 2 else 80
    long = []
    for file in sorted(root.rglob("*")):
        relative = file.relative_to(root).as_posix()
        if file.suffix not in {".cpp", ".hpp", ".h"} or relative.startswith(SKIPPED):
            continue
        for first, last, signature in functions(blank(file.read_text(errors="replace"))):
            if last - first + 1 > limit:
                long.append(f"{relative}:{first}: {last - first + 1} lines: {signature[:90]}")
    for line in long:
        print(line)
    if long:
        print(f"{len(long)} function(s) over {limit} lines (scripts/check-function-length.py)")
        return 1
    print(f"no function outside the kernels is over {limit} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
