#!/usr/bin/env python3
"""Times the explorer's start on a folder whose caches are warm (dev-time; README "Large
folders"): runs `snowscope DIR` in a pseudo-terminal, waits for the log line the explorer
writes when its table is first on screen, then for the end of the folder's check (the
table first shown is the ranking the cache remembers), then quits with `q`. Prints when
the table was on screen, when the check ended, and the whole process's wall time.

    python3 benches/warm_start.py target/release/snowscope /tmp/warm/images /tmp/warm/cache [ROUNDS]

Make a big warm folder with `cargo run --release --example warm_folder`. Previews are
halfblocks so that no graphics probe waits on this terminal-less run.
"""
import os, pty, select, sys, tempfile, time

def once(binary, folder, cache):
    log = tempfile.NamedTemporaryFile(suffix=".log", delete=False).name
    start = time.monotonic()
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["TERM"] = "xterm-256color"
        os.execv(binary, [binary, folder, "--cache-dir", cache, "--log-file", log,
                          "--preview", "halfblocks"])
    shown = checked = None
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
        checked_now = "folder checked" in text or "runtime: ranking ready" in text
        if shown is not None and checked_now and checked is None:
            checked = time.monotonic() - start
            os.write(fd, b"q")
        if checked is not None:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                break
            if done:
                break
    wall = time.monotonic() - start
    text = open(log, errors="replace").read()
    os.unlink(log)
    remembered = "remembered ranking sent" in text
    unchanged = "folder checked: unchanged" in text
    return shown, checked, wall, remembered, unchanged

def main():
    binary, folder, cache = sys.argv[1:4]
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    for r in range(rounds):
        shown, checked, wall, remembered, unchanged = once(binary, folder, cache)
        what = "remembered ranking" if remembered else "ranking"
        check = "unchanged" if unchanged else "ranked anew"
        print(f"round {r + 1}: table on screen after {shown:.2f} s ({what}); folder checked "
              f"after {checked:.2f} s ({check}); process {wall:.2f} s")

main()
