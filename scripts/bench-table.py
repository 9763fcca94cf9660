#!/usr/bin/env python3
"""Turns the output of `cargo bench -p limiter-benches --bench strategies` into a
table: the median estimate of each case in ns, and its ratio to the `governor` case
of the same group (`hit_all` rows: the two-limit case over the one-limit case).

    cargo bench -p limiter-benches --bench strategies > run1.txt
    scripts/bench-table.py run1.txt [run2.txt ...]

With several runs, each figure is the median over the runs of that case's estimate,
and each ratio the median of the runs' ratios (each run's ratio taken within that run).
"""

import re
import statistics
import sys

UNITS = {"ps": 1e-3, "ns": 1.0, "µs": 1e3, "us": 1e3, "ms": 1e6, "s": 1e9}


def parse(path):
    """{case: ns} from one criterion output: the middle of the three estimates."""
    cases = {}
    name = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            m = re.match(r"^(\S+)\s+time:\s+\[(.*)\]", line)
            if m:
                name, rest = m.group(1), m.group(2)
            else:
                m = re.match(r"^\s+time:\s+\[(.*)\]", line)
                if m and name:
                    rest = m.group(1)
                elif re.match(r"^[a-z_0-9]+/\S+$", line.strip()):
                    name = line.strip()
                    continue
                else:
                    continue
            parts = rest.split()
            value, unit = float(parts[2]), parts[3]
            cases[name] = value * UNITS[unit]
    return cases


def ratio(case, cases):
    group, _, leaf = case.rpartition("/")
    if case.startswith("hit_all/"):
        if leaf != "two_limits":
            return None
        base = cases.get(f"{group}/one_limit")
    elif leaf == "governor":
        return None
    else:
        base = cases.get(f"{group}/governor")
    value = cases.get(case)
    return value / base if base and value else None


def main():
    runs = [parse(p) for p in sys.argv[1:]]
    if not runs:
        sys.exit(__doc__)
    names = []
    for run in runs:
        for name in run:
            if name not in names:
                names.append(name)
    print(f"{'case':48} {'ns':>9} {'ratio':>7}")
    for name in names:
        values = [r[name] for r in runs if name in r]
        ratios = [x for x in (ratio(name, r) for r in runs) if x is not None]
        shown = f"{statistics.median(ratios):6.2f}x" if ratios else ""
        print(f"{name:48} {statistics.median(values):9.1f} {shown:>7}")


if __name__ == "__main__":
    main()
