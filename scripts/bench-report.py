#!/usr/bin/env python3
"""Turns the figures of one `scripts/bench-report.sh` run into a Markdown report and
SVG bar charts, with the standard library only.

    scripts/bench-report.py DIR

reads DIR/results.tsv and writes DIR/REPORT.md and one DIR/<table>.svg per table.

results.tsv holds tab-separated records, appended by the bench programs in the order
they ran:

    stamp  KEY  VALUE                      the machine, commit, date, mode...
    table  ID  TITLE  UNIT  BASELINE  BETTER  NOTE  [CHART]
    value  ID  ROW  COLUMN  NUMBER  [BASELINE_ROW]

BASELINE is `row=NAME` (each figure over the figure of row NAME in its column),
`col=NAME` (over the figure of column NAME in its row) or `-` (values name their own
baseline row, or have none). BETTER is `higher` or `lower`. CHART, when present,
lists the columns (comma-separated) the chart shows; by default it shows every column.
A value given twice keeps the last.
"""

import html
import math
import os
import sys

SECTIONS = [
    ("memory", "In-memory storage, next to governor"),
    ("http", "HTTP middleware"),
    ("redis", "Redis"),
    ("memcached", "Memcached"),
]

# Bar colours, one per column (colour-blind-safe palette).
COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00"]


class Table:
    def __init__(self, fields):
        fields = fields + [""] * (7 - len(fields))
        self.id, self.title, self.unit, self.baseline, self.better, self.note = fields[:6]
        self.chart = [c for c in fields[6].split(",") if c] if len(fields) > 6 else []
        self.rows, self.cols = [], []
        self.values = {}
        self.row_baseline = {}

    def add(self, row, col, number, baseline_row=None):
        if row not in self.rows:
            self.rows.append(row)
        if col not in self.cols:
            self.cols.append(col)
        self.values[(row, col)] = number
        if baseline_row:
            self.row_baseline[row] = baseline_row

    def base(self, row, col):
        """The figure (row, col) is compared with, or None."""
        kind, _, name = self.baseline.partition("=")
        if kind == "row":
            other = (name, col)
        elif kind == "col":
            other = (row, name)
        elif row in self.row_baseline:
            other = (self.row_baseline[row], col)
        else:
            return None
        if other == (row, col):
            return None
        return self.values.get(other)


def read(path):
    stamp, tables = {}, {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            if fields[0] == "stamp" and len(fields) >= 3:
                stamp[fields[1]] = fields[2]
            elif fields[0] == "table" and len(fields) >= 7:
                tables[fields[1]] = Table(fields[1:])
            elif fields[0] == "value" and len(fields) >= 5 and fields[1] in tables:
                try:
                    number = float(fields[4])
                except ValueError:
                    continue
                if math.isfinite(number):
                    baseline = fields[5] if len(fields) > 5 else None
                    tables[fields[1]].add(fields[2], fields[3], number, baseline)
    return stamp, [t for t in tables.values() if t.values]


def number(x):
    if x >= 1000:
        return f"{x:,.0f}"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def ratio(value, base):
    return f"{value / base:.2f}×" if base else ""


def markdown_table(table):
    unit = f" ({table.unit})" if table.unit else ""
    head = "| " + " | ".join([""] + [c + unit for c in table.cols]) + " |"
    rule = "|---" + "|---:" * len(table.cols) + "|"
    lines = [head, rule]
    for row in table.rows:
        cells = []
        for col in table.cols:
            value = table.values.get((row, col))
            if value is None:
                cells.append("")
                continue
            base = table.base(row, col)
            cells.append(number(value) + (f" ({ratio(value, base)})" if base else ""))
        lines.append("| " + " | ".join([row] + cells) + " |")
    return "\n".join(lines)


def svg_chart(table, stamp_line):
    """Horizontal grouped bars: one group per row, one bar per charted column."""
    cols = [c for c in (table.chart or table.cols) if c in table.cols]
    font = 12
    char = 6.6  # average width of a character at this size, in px
    label_w = int(max(len(r) for r in table.rows) * char) + 16
    bar_h, bar_gap, group_gap = 12, 2, 10
    plot_w = 420
    value_w = 120
    top = 54 + (18 if len(cols) > 1 else 0)
    group_h = len(cols) * (bar_h + bar_gap) - bar_gap
    height = top + len(table.rows) * (group_h + group_gap) + 36
    legend_w = sum(16 + int(len(c) * char) + 16 for c in cols) if len(cols) > 1 else 0
    width = max(label_w + plot_w + value_w + 16, legend_w + 8, int(len(stamp_line) * char) + 16)
    peak = max(table.values.get((r, c), 0) for r in table.rows for c in cols) or 1
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="{font}">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="8" y="20" font-size="14" font-weight="bold">{html.escape(table.title)}</text>',
        f'<text x="8" y="38" fill="#555555">{html.escape(stamp_line)}</text>',
    ]
    if len(cols) > 1:
        x = 8
        for i, col in enumerate(cols):
            colour = COLOURS[i % len(COLOURS)]
            out.append(f'<rect x="{x}" y="48" width="12" height="12" fill="{colour}"/>')
            out.append(f'<text x="{x + 16}" y="58">{html.escape(col)}</text>')
            x += 16 + int(len(col) * char) + 16
    y = top
    for row in table.rows:
        label_y = y + group_h / 2 + font / 2 - 2
        out.append(
            f'<text x="{label_w - 8}" y="{label_y:.0f}" text-anchor="end">{html.escape(row)}</text>'
        )
        for i, col in enumerate(cols):
            value = table.values.get((row, col))
            by = y + i * (bar_h + bar_gap)
            if value is not None:
                w = max(1.0, plot_w * value / peak)
                colour = COLOURS[i % len(COLOURS)]
                base = table.base(row, col)
                text = number(value) + (f" ({ratio(value, base)})" if base else "")
                out.append(
                    f'<rect x="{label_w}" y="{by}" width="{w:.1f}" height="{bar_h}" fill="{colour}">'
                    f"<title>{html.escape(f'{row}, {col}: {text} {table.unit}')}</title></rect>"
                )
                out.append(
                    f'<text x="{label_w + w + 4:.1f}" y="{by + bar_h - 2}" font-size="10">'
                    f"{html.escape(text)}</text>"
                )
        y += group_h + group_gap
    axis = f"{table.unit}, {table.better} is better" if table.unit else f"{table.better} is better"
    out.append(f'<line x1="{label_w}" y1="{top - 4}" x2="{label_w}" y2="{y - group_gap + 4}" stroke="#999999"/>')
    out.append(f'<text x="{label_w}" y="{y + 12}" fill="#555555">{html.escape(axis)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    folder = sys.argv[1]
    stamp, tables = read(os.path.join(folder, "results.tsv"))
    mode = stamp.get("mode", "unknown")
    stamp_line = (
        f"{mode} run · {stamp.get('cpu', '?')}, {stamp.get('cores', '?')} cores · "
        f"commit {stamp.get('commit', '?')} · {stamp.get('date', '?')}"
    )
    lines = ["# Benchmark report", ""]
    if mode == "short":
        lines += [
            "> **Short-mode figures** (`scripts/bench-report.sh --short`): few, brief rounds, "
            "for a quick look and to check the tooling. Run `scripts/bench-report.sh --full` "
            "for figures to quote.",
            "",
        ]
    lines += [
        "Every comparison of the project, each interleaved in rounds within one run, "
        "produced by one command:",
        "",
        "```text",
        f"scripts/bench-report.sh --{mode if mode in ('short', 'full') else 'full'}",
        "```",
        "",
        "Ratios compare figures of the same run on the same machine; figures from other "
        "machines or other runs are not comparable with these.",
        "",
        "| | |",
        "|---|---|",
    ]
    for key, label in [
        ("mode", "mode"),
        ("cpu", "CPU"),
        ("cores", "cores"),
        ("memory", "memory"),
        ("kernel", "kernel"),
        ("rustc", "compiler"),
        ("commit", "commit"),
        ("date", "date"),
        ("redis", "Redis server"),
        ("memcached", "Memcached server"),
        ("wrk", "wrk"),
        ("load", "load average (start → end)"),
        ("duration", "duration of the measurements"),
    ]:
        if key in stamp:
            lines.append(f"| {label} | {stamp[key]} |")
    lines.append("")
    for prefix, heading in SECTIONS:
        chosen = [t for t in tables if t.id.split("-")[0] == prefix]
        if not chosen:
            continue
        lines += [f"## {heading}", ""]
        for table in chosen:
            svg = f"{table.id}.svg"
            with open(os.path.join(folder, svg), "w", encoding="utf-8") as f:
                f.write(svg_chart(table, stamp_line))
            lines += [f"### {table.title}", ""]
            if table.note:
                lines += [table.note[0].upper() + table.note[1:] + ".", ""]
            lines += [f"![{table.title}]({svg})", "", markdown_table(table), ""]
    with open(os.path.join(folder, "REPORT.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
