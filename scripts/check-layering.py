#!/usr/bin/env python3
"""Fails when a library includes a header of a library above it.

The libraries, lowest first (CONTRIBUTING.md has the map):
  kernels <- model <- text <- protocol <- discovery <- {net, actors} <- {node, sim} <- cli
net (ZeroMQ) and actors (CAF) stand side by side: neither includes the other, and the simulator
runs the actors without net. A library's tests (tests/<library>/) may include what the library
may. Usage: check-layering.py SOURCE_DIR
"""
import pathlib
import re
import sys

BELOW = {
    "kernels": set(),
    "model": {"kernels"},
    "text": {"model"},
    "protocol": {"text"},
    "discovery": {"protocol"},
    "net": {"discovery"},
    "actors": {"discovery"},
    "node": {"actors", "net"},
    "sim": {"actors"},
    "cli": {"node", "sim"},
}

# Folders and the library their sources belong to; the first match wins.
FOLDERS = [
    ("kernels", "kernels"), ("runtime/model", "model"), ("runtime/text", "text"),
    ("runtime/protocol", "protocol"), ("discovery", "discovery"), ("actors/net", "net"),
    ("actors/node", "node"), ("actors", "actors"), ("sim", "sim"), ("cli", "cli"),
    ("bench", "text"), ("fuzz", "protocol"),
    ("tests/kernels", "kernels"), ("tests/model", "model"), ("tests/text", "text"),
    ("tests/protocol", "protocol"), ("tests/discovery", "discovery"), ("tests/net", "net"),
    ("tests/actors", "actors"), ("tests/sim", "sim"), ("tests/cli", "cli"),
    ("tests/processes", "cli"), ("tests/cross", "cli"), ("tests/support", "cli"),
]

INCLUDE = re.compile(r'^\s*#\s*include\s+"troupe/([a-z_]+)/')


def allowed(library):
    seen, todo = {library}, [library]
    while todo:
        for lower in BELOW[todo.pop()]:
            if lower not in seen:
                seen.add(lower)
                todo.append(lower)
    return seen


def library_of(path):
    for folder, library in FOLDERS:
        if path == folder or path.startswith(folder + "/"):
            return library
    return None


def main():
    root = pathlib.Path(sys.argv[1])
    problems = []
    for file in sorted(root.rglob("*")):
        relative = file.relative_to(root).as_posix()
        if file.suffix not in {".cpp", ".hpp", ".h", ".in"} or relative.startswith(("build", ".")):
            continue
        library = library_of(relative)
        if library is None:
            continue
        ok = allowed(library)
        for number, line in enumerate(file.read_text(errors="replace").splitlines(), 1):
            m = INCLUDE.match(line)
            if m and m.group(1) not in ok:
                problems.append(f"{relative}:{number}: {library} includes troupe/{m.group(1)}/, "
                                f"which is above it")
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} include(s) run against the layering (scripts/check-layering.py)")
        return 1
    print("every include runs down the layering")
    return 0


if __name__ == "__main__":
    sys.exit(main())
