#!/usr/bin/python3
"""scripts/plot_pareto.py — the recall vs state-size Pareto plot (Based paper Fig. 2 style) from the CSV that
`jrt synth sweep` writes.

    python3 scripts/plot_pareto.py sweep.csv -o pareto.png [--title "MQAR, CPU smoke run"]

One panel per task shape (MQAR: seq_len / kv_pairs; set disjointness: |A| / |B|). Each point is the best
accuracy over learning rates and seeds for one (mixer, state size) — as the papers' plots take the best run per
point — on a log2 state-size axis; the dashed line is the Pareto frontier over all mixers (the most accurate
model at or below each state size). Needs python3-matplotlib (Debian package); nothing else.
"""
import argparse
import csv
import math
import sys
from collections import defaultdict


def load(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        sys.exit(f"{path}: no rows")
    need = {"task", "mixer", "accuracy", "state_bytes"}
    missing = need - set(rows[0].keys())
    if missing:
        sys.exit(f"{path}: missing columns {sorted(missing)} (is this a `jrt synth sweep` CSV?)")
    return rows


def shape_key(r):
    if r["task"] == "mqar":
        return f"MQAR  L={r['seq_len']}  kv={r['kv_pairs']}"
    return f"disjoint  |A|={r['short_length']}  |B|={r['long_length']}"


def best_points(rows):
    """{shape: {mixer: [(state_bytes, best accuracy), ...]}}"""
    best = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        s, m, sb, acc = shape_key(r), r["mixer"], int(r["state_bytes"]), float(r["accuracy"])
        if acc > best[s][m].get(sb, -1.0):
            best[s][m][sb] = acc
    return {s: {m: sorted(p.items()) for m, p in mix.items()} for s, mix in best.items()}


def frontier(points):
    """Pareto frontier: sorted by state size, keep points more accurate than every smaller one."""
    out, top = [], -1.0
    for sb, acc in sorted(points):
        if acc > top:
            out.append((sb, acc))
            top = acc
    return out


def main():
    ap = argparse.ArgumentParser(description="Pareto plot of state size vs accuracy from a jrt synth sweep CSV")
    ap.add_argument("csv", help="CSV written by `jrt synth sweep`")
    ap.add_argument("-o", "--output", default="pareto.png", help="output PNG")
    ap.add_argument("--title", default="", help="figure title")
    a = ap.parse_args()
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("matplotlib is missing: apt-get install python3-matplotlib (and run it with /usr/bin/python3, Debian's)")

    data = best_points(load(a.csv))
    shapes = sorted(data)
    fig, axes = plt.subplots(1, len(shapes), figsize=(5.2 * len(shapes), 4.2), squeeze=False)
    markers = "osD^v<>pX*"
    mixers = sorted({m for s in shapes for m in data[s]})
    for ax, s in zip(axes[0], shapes):
        every = []
        for i, m in enumerate(mixers):
            pts = data[s].get(m, [])
            if not pts:
                continue
            every += pts
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=markers[i % len(markers)], linestyle="none",
                    markersize=7, alpha=0.85, label=m)
        fr = frontier(every)
        if len(fr) > 1:
            ax.step([p[0] for p in fr], [p[1] for p in fr], where="post", linestyle="--", color="gray", linewidth=1,
                    label="Pareto frontier")
        ax.set_xscale("log", base=2)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("recurrent state (bytes, fp32, one sequence)")
        ax.set_ylabel("accuracy")
        ax.set_title(s)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    if a.title:
        fig.suptitle(a.title)
    fig.tight_layout()
    fig.savefig(a.output, dpi=120)
    n = sum(len(p) for s in shapes for p in data[s].values())
    print(f"wrote {a.output}: {len(shapes)} panel(s), {n} points, mixers {', '.join(mixers)}")


if __name__ == "__main__":
    main()
