#!/usr/bin/env python3
"""Many users at once (README figures): aggregate generation speed and time to first token.

    bench/batching.py BUILD_DIR [--model FILE.gguf] [--sessions 1,2,4,8,16] [--tokens N] [--mesh one|two|both]

Writes a TinyLlama-1.1B-shaped Q4_0 model with `troupe synth` (unless --model names one), starts
  one:  one `troupe node` holding every layer, 2 threads;
  two:  a 2-node pipeline on loopback, 1 thread each;
and for each count N streams N completions at once through the first node's HTTP API
(temperature 0, --tokens each, prompts of 3-7 tokens). Aggregate tok/s is every
session's tokens over the time from the first request to the last token. Then, with 8 sessions
generating, one more session's time to first token is compared with the same request on the
idle mesh. The nodes' batched passes (`/metrics`) give rows and sessions per pass.
"""
import argparse, http.client, json, os, re, socket, subprocess, sys, tempfile, threading, time

ap = argparse.ArgumentParser()
ap.add_argument("build", nargs="?", default="build")
ap.add_argument("--model")
ap.add_argument("--sessions", default="1,2,4,8,16")
ap.add_argument("--tokens", type=int, default=64)
ap.add_argument("--mesh", default="both", choices=["one", "two", "both"])
opts = ap.parse_args()
T = os.path.join(opts.build, "troupe")
work = tempfile.mkdtemp(prefix="troupe-batch-bench-")
model = opts.model or os.path.join(work, "tinyllama-q4_0.gguf")
if not opts.model:
    subprocess.run([T, "synth", "--shape", "tinyllama-1.1b", "--type", "q4_0", "--out", model], check=True,
                   capture_output=True)
layers = int(re.search(r"(\d+) layers", subprocess.run([T, "info", model], capture_output=True, text=True).stdout).group(1))
# Short prompts: generation is measured, not prompts (`troupe synth`'s vocabulary is bytes).
PROMPTS = ["Once", "A dog", "Tom", "The sun", "Lily", "A bird"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mesh(kind):
    procs, http_port = [], free_port()
    ranges = [(0, layers, 2)] if kind == "one" else [(0, layers // 2, 1), (layers // 2, layers, 1)]
    first = None
    for i, (a, b, threads) in enumerate(ranges):
        addr = f"127.0.0.1:{free_port()}"
        args = [T, "node", "--listen", addr, "--model", model, "--insecure", "--layers", f"{a}:{b}",
                "--threads", str(threads), "--name", f"n{i}"]
        args += ["--http", str(http_port)] if i == 0 else ["--join", first]
        first = first or addr
        procs.append(subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, f"n{i}.log"), "w")))
    end = time.time() + 120
    while time.time() < end:
        try:
            c = http.client.HTTPConnection("127.0.0.1", http_port, timeout=5)
            c.request("GET", "/mesh")
            if json.loads(c.getresponse().read()).get("serving"):
                return procs, http_port
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    raise SystemExit("the mesh did not serve in 120 s; logs in " + work)


def stream(port, prompt, tokens, out):
    """One streamed completion: appends (start, first token, last token, tokens) to out."""
    t0 = time.time()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    body = json.dumps({"prompt": prompt, "max_tokens": tokens, "temperature": 0, "stream": True})
    c.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    r = c.getresponse()
    first = last = None
    n = 0
    for line in r:
        if not line.startswith(b"data: {"):
            continue
        chunk = json.loads(line[6:])
        if chunk["choices"] and chunk["choices"][0].get("text"):
            last = time.time()
            first = first or last
            n += 1
    out.append((t0, first, last, n))


def metrics(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    return {k: float(v) for k, v in re.findall(r"^(troupe_stage_\w+_total) (\S+)$", text, re.M)}


def run_sessions(port, n, tokens):
    out, threads = [], []
    for i in range(n):
        threads.append(threading.Thread(target=stream, args=(port, PROMPTS[i % len(PROMPTS)], tokens, out)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    start = min(o[0] for o in out)
    end = max(o[2] for o in out if o[2])
    total = sum(o[3] for o in out)
    return total / (end - start), total


def ttft(port, under_load):
    """Time to first token of a new session, alone or while 8 others generate."""
    others, threads = [], []
    if under_load:
        for i in range(8):
            threads.append(threading.Thread(target=stream, args=(port, PROMPTS[i % len(PROMPTS)], 4 * opts.tokens, others)))
            threads[-1].start()
        time.sleep(3)  # all eight past their prompts
    mine = []
    stream(port, "Lily and Tom went to the beach.", 4, mine)  # 31 tokens
    for t in threads:
        t.join()
    return mine[0][1] - mine[0][0]


kinds = ["one", "two"] if opts.mesh == "both" else [opts.mesh]
cpu = re.search(r"Model name:\s*(.*)", subprocess.run(["lscpu"], capture_output=True, text=True).stdout)
print(f"# {time.strftime('%Y-%m-%d')}, {cpu.group(1) if cpu else '?'}, {os.cpu_count()} CPUs, {os.path.basename(model)}")
for kind in kinds:
    procs, port = start_mesh(kind)
    try:
        stream(port, PROMPTS[0], 4, [])  # warm-up: weights paged in
        base = None
        for n in [int(x) for x in opts.sessions.split(",")]:
            before = metrics(port)
            rate, total = run_sessions(port, n, opts.tokens)
            after = metrics(port)
            passes = after["troupe_stage_passes_total"] - before["troupe_stage_passes_total"]
            rows = after["troupe_stage_positions_total"] - before["troupe_stage_positions_total"]
            batched = after["troupe_stage_pass_sessions_total"] - before["troupe_stage_pass_sessions_total"]
            base = base or rate
            print(f"{kind}-node  sessions {n:2d}: {rate:6.2f} tok/s aggregate ({rate / base:4.2f}x one session), "
                  f"{total} tokens; first node: {rows / max(passes, 1):5.1f} rows and {batched / max(passes, 1):4.1f} sessions a pass")
        idle, loaded = ttft(port, False), ttft(port, True)
        print(f"{kind}-node  time to first token: idle {idle * 1000:.0f} ms, with 8 sessions generating "
              f"{loaded * 1000:.0f} ms ({loaded / idle:.2f}x)")
    finally:
        for p in procs:
            p.kill()
            p.wait()
if not opts.model:
    os.remove(model)
