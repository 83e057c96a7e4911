#!/usr/bin/env python3
"""Runs every reference case of `troupe run` (SHARED/reference/stories260K-cases.json) on a
cross-built troupe under qemu-user (scripts/cross-run), once per kernel path of that architecture,
and checks stdout byte for byte: cross-reference.py ARCH SHARED ISA[@CPU]...
ISA goes to TROUPE_ISA, CPU (a qemu -cpu name) to QEMU_CPU: neon@cortex-a72 runs the NEON path on
an emulated CPU without sdot, which troupe detects there by itself; TROUPE_ISA then changes nothing
and the "isa" line of its statistics proves the path taken."""
import json
import os
import subprocess
import sys
from pathlib import Path


def case_args(model_dir, case):
    return ["run", str(model_dir / "stories260K.bin"), "-z", str(model_dir / "tok512.bin"),
            "-t", f"{case['temperature']:g}", "-p", f"{case['topp']:g}", "-s", str(case["seed"]),
            "-n", str(case["steps"]), "-i", case["prompt"]]


def main():
    if len(sys.argv) < 4:
        print("usage: cross-reference.py ARCH SHARED ISA[@CPU]...", file=sys.stderr)
        return 2
    arch, shared, isas = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
    cases_file = shared / "reference" / "stories260K-cases.json"
    if not cases_file.is_file():
        print(f"cross-reference: {cases_file} is missing", file=sys.stderr)
        return 2
    cases = json.loads(cases_file.read_text())
    cross_run = Path(__file__).resolve().parent / "cross-run"
    failures = 0
    for path in isas:
        isa, _, cpu = path.partition("@")
        env = dict(os.environ, TROUPE_ISA=isa)
        if cpu:
            env["QEMU_CPU"] = cpu
        for case in cases:
            r = subprocess.run([str(cross_run), arch] + case_args(shared / "models/stories260K", case),
                               capture_output=True, env=env)
            # run prints the ISA it used on stderr: a path that is silently not taken is a failure.
            used = f"isa {isa}\n".encode() in r.stderr
            ok = r.returncode == 0 and used and r.stdout == case["expected_stdout"].encode()
            failures += not ok
            label = f"{arch} {path} t={case['temperature']:g} s={case['seed']} '{case['prompt'][:30]}'"
            print(("ok   " if ok else "FAIL ") + label)
            if not ok:
                print(f"  exit {r.returncode}, stderr: {r.stderr.decode(errors='replace')[-500:]}")
    print(f"cross-reference {arch}: {len(isas) * len(cases) - failures} of {len(isas) * len(cases)} ok")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
