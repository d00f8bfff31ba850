"""Render rows of `results/optimize_gains.json` as the markdown table the docs show.

    .venv/bin/python benchmarks/gains_table.py --tags matrix-s0,datafree-s0 --into docs/optimize.md --marker matrix

Rows are chosen by tag (a row of another tag is never shown), optionally only of some models and
modes (`--models`, `--modes`), ordered model, target, mode, then in the order of `--tags`; with
`--into FILE --marker NAME` the table replaces what lies between `<!-- NAME-table -->` and
`<!-- /NAME-table -->` in FILE, otherwise it is printed. Tables written by hand drift from their
file; this one is rebuilt from it.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "optimize_gains.json"
MODELS = ("resnet50", "vgg16_bn", "mobilenet_v2", "edsr", "nb201_best")
TARGETS = ("ort-cpu", "npu-sim")
MODES = ("cleanup", "autogo", "random", "macs")


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:+.1f}%"


def _latency(row: dict) -> str:
    """The in-loop change; on a timed target also the head-to-head figure the emit rule confirmed."""
    text = _pct(row.get("latency_change"))
    h2h = row.get("head_to_head") or {}
    if h2h.get("latency_change") is not None:
        lo, hi = h2h["latency_ratio_ci95"]
        text += f" (h2h {_pct(h2h['latency_change'])}, CI {_pct(lo - 1)}..{_pct(hi - 1)})"
    return text


def _order(row: dict, tags: tuple[str, ...] = ()) -> tuple:
    def at(seq: tuple, x: str) -> int:
        return seq.index(x) if x in seq else len(seq)

    key = (at(MODELS, row["model"]), row["model"], at(TARGETS, row["target"]), at(MODES, row["mode"]))
    return (*key, at(tags, row.get("tag")))


def render(rows: list[dict], tags: tuple[str, ...] = ()) -> str:
    head = (
        "| model | target | mode | objective | generations | emitted | latency | energy | MACs "
        "| pred. acc Δ (pp) | depth | main-path width | wall | peak RSS | tag |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in sorted(rows, key=lambda r: _order(r, tags)):
        cleanup = r["mode"] == "cleanup"
        emitted = r.get("emitted")
        acc = r.get("predicted_acc_delta")
        canon = r.get("canonical_check") or {}
        left = sum((canon.get("rewrites") or {}).values())
        depth = "—" if r.get("depth") is None else f"{r['depth']}/{r.get('baseline_depth', '?')}"
        narrowed = r.get("width_drop")
        width = (
            "—"
            if narrowed is None or not emitted
            else "0%"
            if narrowed < 0.005
            else f"{-100 * narrowed:.0f}%"
        )
        cells = [
            r["model"],
            r["target"],
            r["mode"],
            r.get("objective") or "—",
            "—" if cleanup else str(r.get("generations_run", r.get("generations"))),
            ("yes" if emitted else "no") + (f" ({left} left to canonicalise)" if left else ""),
            _latency(r) if emitted else "—",
            _pct(r.get("energy_change")) if emitted else "—",
            _pct(r.get("macs_change")) if emitted else "—",
            "—" if acc is None or not emitted else f"{acc:+.2f}",
            depth,
            width,
            f"{r['wall_s']:.0f} s",
            f"{r['peak_rss_mb'] / 1000:.1f} GB",
            r.get("tag") or "—",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"


def replace_between(text: str, marker: str, table: str) -> str:
    start, end = f"<!-- {marker}-table -->", f"<!-- /{marker}-table -->"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise SystemExit(f"error: markers {start} … {end} not found")
    return pattern.sub(lambda _: f"{start}\n{table}{end}", text, count=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tags", required=True, help="comma-separated row tags to show")
    ap.add_argument("--models", default=None, help="comma-separated models to show (default: all)")
    ap.add_argument("--modes", default=None, help="comma-separated modes to show (default: all)")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--into", type=Path, default=None, help="markdown file to update in place")
    ap.add_argument("--marker", default="matrix")
    args = ap.parse_args()
    tags = tuple(args.tags.split(","))
    rows = [r for r in json.loads(args.results.read_text())["rows"] if r.get("tag") in tags]
    if args.models:
        rows = [r for r in rows if r["model"] in args.models.split(",")]
    if args.modes:
        rows = [r for r in rows if r["mode"] in args.modes.split(",")]
    if not rows:
        raise SystemExit(
            f"error: no rows tagged {sorted(tags)} (of the models and modes asked for) in {args.results}"
        )
    table = render(rows, tags)
    if args.into is None:
        print(table, end="")
        return
    args.into.write_text(replace_between(args.into.read_text(), args.marker, table))


if __name__ == "__main__":
    main()
