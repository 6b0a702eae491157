#!/usr/bin/env python3
"""Times the explorer's start on a folder whose caches are warm (dev-time; README "Large
folders"): runs `snowscope DIR` in a pseudo-terminal, waits for the log line the explorer
writes when its table is first on screen, then quits with `q`. Prints the log's timings
(features ready, ranking ready, explorer shown) and the whole process's wall time.

    python3 benches/warm_start.py target/release/snowscope /tmp/warm/images /tmp/warm/cache [ROUNDS]

Make a big warm folder with `cargo run --release --example warm_folder`. Previews are
halfblocks so that no graphics probe waits on this terminal-less run.
"""
import os, pty, re, select, sys, tempfile, time

def once(binary, folder, cache):
    log = tempfile.NamedTemporaryFile(suffix=".log", delete=False).name
    start = time.monotonic()
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["TERM"] = "xterm-256color"
        os.execv(binary, [binary, folder, "--cache-dir", cache, "--log-file", log,
                          "--preview", "halfblocks"])
    shown = None
    while time.monotonic() - start < 600:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try:
                os.read(fd, 1 << 16)
            except OSError:
                break
        text = open(log, errors="replace").read() if os.path.exists(log) else ""
        if "explorer shown" in text and shown is None:
            shown = time.monotonic() - start
            os.write(fd, b"q")
        if shown is not None:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                break
            if done:
                break
    wall = time.monotonic() - start
    text = open(log, errors="replace").read()
    os.unlink(log)
    marks = {}
    for what in ("features ready", "ranking ready", "explorer shown"):
        m = re.search(r"secs=([0-9.]+)(m?s).*?" + what + r"|" + what + r".*?secs=([0-9.]+)(m?s)", text)
        if m:
            value, unit = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
            marks[what] = float(value) / (1000 if unit == "ms" else 1)
    return shown, wall, marks

def main():
    binary, folder, cache = sys.argv[1:4]
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    for r in range(rounds):
        shown, wall, marks = once(binary, folder, cache)
        parts = ", ".join(f"{k} {v:.2f} s" for k, v in marks.items())
        print(f"round {r + 1}: table on screen after {shown:.2f} s ({parts}); process {wall:.2f} s")

main()
