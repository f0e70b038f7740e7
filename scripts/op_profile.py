#!/usr/bin/env python3
"""Sums each op's own time (its duration less its children's) in a Chrome trace written
by LibTorch's legacy profiler (bench/train_step_bench --trace FILE), and prints the ops
with the largest totals.

Usage: scripts/op_profile.py TRACE.json [--top 25]
"""
import json
import sys
from collections import defaultdict


def main():
    args = sys.argv[1:]
    if not args:
        sys.exit(__doc__)
    top = 25
    if "--top" in args:
        top = int(args[args.index("--top") + 1])
    with open(args[0]) as f:
        text = f.read().strip()
    data = json.loads(text if text.endswith("]") else text.rstrip(",") + "]")
    events = data["traceEvents"] if isinstance(data, dict) else data
    by_tid = defaultdict(list)
    for e in events:
        if e.get("ph") == "X":
            by_tid[e.get("tid")].append((float(e["ts"]), float(e["dur"]), e["name"]))
    own = defaultdict(float)
    calls = defaultdict(int)
    total = 0.0
    for evs in by_tid.values():
        evs.sort(key=lambda x: (x[0], -x[1]))
        stack = []  # [end, name, child time]
        def close(upto):
            while stack and stack[-1][0] <= upto:
                end, name, child, dur = stack.pop()
                own[name] += dur - child
        for ts, dur, name in evs:
            close(ts)
            if stack:
                stack[-1][2] += dur
            else:
                total += dur
            calls[name] += 1
            stack.append([ts + dur, name, 0.0, dur])
        close(float("inf"))
    print(f"top-level time {total / 1e6:.3f} s")
    print(f"{'own s':>8} {'share':>6} {'calls':>7}  op")
    for name, t in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        print(f"{t / 1e6:8.3f} {100 * t / total:5.1f}% {calls[name]:7d}  {name}")


if __name__ == "__main__":
    main()
