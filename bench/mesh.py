#!/usr/bin/env python3
"""Mesh timings on loopback (README figures): failure detection, kill to next token, join to plan.

    bench/mesh.py BUILD_DIR [ROUNDS]

Starts three `troupe node`s with no --layers on a `troupe synth` model, streams an answer, kills
(-9) the node holding the middle stage after 2 s, and measures from the kill: the first suspicion
and the death in the survivors' logs, and the gap until the next piece of text reaches the client.
Then a fourth node joins and the time from its start to a plan that uses it is measured. Each
answer is also checked byte for byte against `troupe run`.
"""
import json, os, re, signal, subprocess, sys, tempfile, time

build = sys.argv[1] if len(sys.argv) > 1 else "build"
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
T = os.path.join(build, "troupe")
work = tempfile.mkdtemp(prefix="troupe-mesh-bench-")
model = os.path.join(work, "m.gguf")
subprocess.run([T, "synth", "--dim", "512", "--hidden", "1376", "--layers", "6", "--heads", "8",
                "--kv-heads", "8", "--vocab", "4096", "--seq-len", "1024", "--seed", "3", "--out", model],
               check=True, capture_output=True)
args = ["-t", "1", "-s", "42", "-n", "900", "-i", "Once upon a time"]
single = subprocess.run([T, "run", model, "--threads", "1"] + args, check=True, capture_output=True).stdout


def status(peer):
    r = subprocess.run([T, "status", "--peer", peer, "--json"], capture_output=True, text=True)
    return json.loads(r.stdout) if r.returncode == 0 else None


def wait(peer, ok, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        s = status(peer)
        if s and ok(s):
            return s
        time.sleep(0.02)
    raise SystemExit(f"timed out waiting on {peer}")


def log_time(path, pattern, after):
    # Log lines start with [HH:MM:SS.mmm] (local time of day).
    for line in open(path, errors="replace"):
        m = re.match(r"\[(\d+):(\d+):(\d+\.\d+)\]", line)
        if m and re.search(pattern, line):
            t = int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])
            if t >= after:
                return t
    return None


def time_of_day():
    lt = time.localtime()
    return lt.tm_hour * 3600 + lt.tm_min * 60 + lt.tm_sec + (time.time() % 1)


results = []
for r in range(rounds):
    base = 7700 + 20 * r
    procs, logs = {}, {}
    for i, name in enumerate(["a", "b", "c"]):
        addr = f"127.0.0.1:{base + i}"
        logs[addr] = os.path.join(work, f"{r}-{name}.log")
        cmd = [T, "node", "--listen", addr, "--model", model, "--name", name, "--threads", "1"]
        if i:
            cmd += ["--join", f"127.0.0.1:{base}"]
        procs[addr] = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(logs[addr], "w"))
    s = wait(f"127.0.0.1:{base}", lambda s: s["serving"] and len(s["plan"]["stages"]) == 3)
    entry, victim = s["plan"]["stages"][0]["address"], s["plan"]["stages"][1]["address"]
    gen = subprocess.Popen([T, "generate", "--peer", entry] + args, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL)
    out, gaps, t_kill, last = b"", [], None, None
    started = time.time()
    os.set_blocking(gen.stdout.fileno(), True)
    while True:
        chunk = os.read(gen.stdout.fileno(), 65536)
        now = time.time()
        if not chunk:
            break
        out += chunk
        if t_kill is not None and last is not None and last <= t_kill < now:
            gaps.append(now - t_kill)
        last = now
        if t_kill is None and now - started > 2:
            procs[victim].send_signal(signal.SIGKILL)
            t_kill, tod_kill = time.time(), time_of_day()
    gen.wait()
    survivor = [a for a in procs if a not in (victim,)][0]
    suspect = log_time(logs[survivor], r"is suspect", tod_kill)
    dead = log_time(logs[survivor], r"is dead", tod_kill)
    # Join to plan: a fourth node.
    d = f"127.0.0.1:{base + 5}"
    t_join = time.time()
    procs[d] = subprocess.Popen([T, "node", "--listen", d, "--model", model, "--name", "d", "--threads", "1",
                                 "--join", entry], stdout=subprocess.DEVNULL,
                                stderr=open(os.path.join(work, f"{r}-d.log"), "w"))
    wait(entry, lambda s: any(st["node"] == "d" for st in s["plan"]["stages"]))
    joined = time.time() - t_join
    wait(entry, lambda s: s["serving"] and any(st["node"] == "d" for st in s["plan"]["stages"]))
    serving = time.time() - t_join
    for p in procs.values():
        p.send_signal(signal.SIGTERM)
    for p in procs.values():
        p.wait()
    res = {
        "identical": out == single,
        "suspect_s": round(suspect - tod_kill, 3) if suspect else None,
        "dead_s": round(dead - tod_kill, 3) if dead else None,
        "kill_to_next_token_s": round(gaps[0], 3) if gaps else None,
        "join_to_plan_s": round(joined, 3),
        "join_to_serving_s": round(serving, 3),
    }
    results.append(res)
    print(json.dumps(res), flush=True)

print(f"(logs in {work})")
