"""The `optimize` report: a versioned JSON document and a self-contained HTML page (inline SVG).

Every number says where it comes from: `measured` (harness on the target), `simulated` (npu-sim),
`predicted` (PSC predictor) or `exact` (counted from the graph).
"""

from __future__ import annotations

import html
import json

SCHEMA_VERSION = 1
NOTICE = (
    "The architecture changed: new or resized layers carry freshly initialised weights, so the "
    "optimized model must be fine-tuned (or retrained) before its accuracy means anything. The "
    "accuracy change shown is predicted, not measured."
)
EXTRAPOLATED = (
    "the predicted accuracy change is an extrapolation: the accuracy head learnt from NAS-Bench cell "
    "networks, and this network is not one (only --space nb201 stays inside them); on zoo networks its "
    "ordering is wrong (it predicts ResNet-18 above ResNet-101 above ResNet-50), so it cannot see what "
    "removing layers costs, nor what narrowing the main path costs (its training networks have fixed "
    "widths). That is why at most 10% of the input's depth may go by default (depth_drop=0.1) and the "
    "main path keeps at least half its width at every resolution (width_drop=0.5); --budget "
    "depth_drop=0 width_drop=0 keeps all of both, and --evaluator scores candidates on your own data"
)


def _cand(c, key: str) -> dict:
    m = c.measured or {}
    return {
        "id": c.cid,
        "parent": c.parent,
        "generation": c.generation,
        "arch": c.arch,
        "macs": c.macs,
        "params": c.params,
        "peak_mem_mb_estimate": round(c.peak_mem_mb, 3),
        "depth": c.depth,
        "depth_drop": c.depth_drop,
        "main_path_widths": c.widths or None,  # narrowest main-path channels per resolution (width.py)
        "width_drop": c.width_drop,
        "measured": m or None,
        "modeled": c.modeled,  # the target's cost model run by the proposer (npu-sim), else None
        "predicted": c.predicted,
        "predicted_acc_delta": c.acc_delta,
        "evaluator_score": c.evaluator,
        "objective_value": c.cost(key),
        "objective_source": _source(c, key),
        "changes": c.changes,
    }


def _source(c, key: str) -> str:
    """Where a candidate's objective value comes from (Candidate.cost's order)."""
    if key in ("macs", "params"):
        return "exact"
    if (c.measured or {}).get(key) is not None:
        return "measured"
    if (c.modeled or {}).get(key) is not None:
        return "modeled (the target's cost model, run by the proposer)"
    return "predicted"


def build_doc(result, *, output: str | None = None, front_dir: str | None = None) -> dict:
    s = result.search
    key = {"latency": "latency_ms", "energy": "energy_mj", "macs": "macs", "accuracy": "neg_acc"}[
        result.objective
    ]
    base, best = s.baseline, s.best
    # predictor info from scoring.make_scorer (a result without the key predates the label)
    in_distribution = (result.predictor or {}).get("accuracy_in_distribution", True)
    doc = {
        "schema_version": SCHEMA_VERSION,
        "kind": "autogo-deploy optimize report",
        "input": result.source,
        "target": result.target,
        "objective": result.objective,
        "budgets": result.budgets.to_dict(),
        "budgets_by_default": list(getattr(result.budgets, "defaulted", ())),
        "space": result.space,
        "stopped": s.stopped,
        "elapsed_s": round(s.elapsed_s, 2),
        "candidates_evaluated": s.evaluated,
        "proposer": result.proposer_stats,
        "predictor": result.predictor,
        "baseline": _cand(base, key),
        "best": _cand(best, key) if best else None,
        "front": [_cand(c, key) for c in s.front],
        "history": s.history,
        "evaluated_points": s.points,
        "output": output if best else None,
        "front_dir": front_dir,
        "notice": NOTICE,
        "accuracy_note": None if in_distribution else EXTRAPOLATED,
        "head_to_head": getattr(result, "head_to_head", None),
    }
    if best:
        bm, mm = base.measured or {}, best.measured or {}

        def change(a, b):
            return None if a in (None, 0) or b is None else (b - a) / a

        doc["improvement"] = {
            "latency_change": change(bm.get("latency_ms"), mm.get("latency_ms")),
            "energy_change": change(bm.get("energy_mj"), mm.get("energy_mj")),
            "macs_change": change(base.macs, best.macs),
            "params_change": change(base.params, best.params),
            "predicted_acc_delta": best.acc_delta,
            "latency_source": mm.get("method", "measured"),
            "energy_source": mm.get("power_method"),
        }
        if result.space is None:  # NB201 results are cell networks of the same depth (arch string)
            from autogo_deploy.report.structure import compare

            doc["structure"] = compare(base.model_bytes, best.model_bytes)
        confirmed = [t for t in (doc["head_to_head"] or {}).get("tries", []) if t.get("accepted")]
        if confirmed:  # input and result measured in alternating rounds: the drift-free comparison
            doc["improvement"]["latency_change_head_to_head"] = confirmed[-1]["latency_ratio"] - 1.0
            doc["improvement"]["latency_ratio_ci95_head_to_head"] = confirmed[-1]["latency_ratio_ci95"]
    else:
        doc["improvement"] = None
        doc["why_no_result"] = (
            "no measured candidate met the budgets and beat the input's measured "
            f"{result.objective}; nothing was written"
        )
        tries = (doc["head_to_head"] or {}).get("tries") or []
        if tries:
            doc["why_no_result"] = (
                f"the search's best {len(tries)} candidate(s) were not confirmed against the input when "
                "both were measured in alternating rounds (head to head); nothing was written"
            )
    return doc


def _scatter(points: list[dict], width: int = 640, height: int = 360) -> str:
    """Pareto plot: x = objective (ms/mJ/MACs), y = predicted accuracy change (pp)."""
    xs = [p["x"] for p in points if p["x"] is not None]
    ys = [p["y"] for p in points if p["y"] is not None]
    if not xs:
        return "<p class=muted>no data to plot</p>"
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys + [0.0]), max(ys + [0.0])
    x1 = x1 if x1 > x0 else x0 + 1
    y1 = y1 if y1 > y0 else y0 + 1
    pad = 64

    def sx(v):
        return pad + (v - x0) / (x1 - x0) * (width - 2 * pad)

    def sy(v):
        return height - pad - (v - y0) / (y1 - y0) * (height - 2 * pad)

    parts = [
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" id="pareto">',
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#889"/>',
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#889"/>',
        f'<text x="{width / 2}" y="{height - 10}" text-anchor="middle">objective (measured = filled)</text>',
        f'<text x="14" y="{height / 2}" transform="rotate(-90 14 {height / 2})" text-anchor="middle">'
        "predicted accuracy change (pp)</text>",
        f'<text x="{pad}" y="{height - pad + 14}">{x0:.4g}</text>',
        f'<text x="{width - pad}" y="{height - pad + 14}" text-anchor="end">{x1:.4g}</text>',
        f'<text x="{pad - 4}" y="{sy(y1) + 4}" text-anchor="end">{y1:+.2f}</text>',
        f'<text x="{pad - 4}" y="{sy(y0) + 4}" text-anchor="end">{y0:+.2f}</text>',
    ]
    colors = {"baseline": "#c44e52", "best": "#55a868", "front": "#4c72b0", "other": "#bbbbcc"}
    for p in sorted(points, key=lambda p: ["other", "front", "best", "baseline"].index(p["kind"])):
        if p["x"] is None or p["y"] is None:
            continue
        fill = colors[p["kind"]] if p["measured"] else "white"
        parts.append(
            f'<circle class="pt" cx="{sx(p["x"]):.1f}" cy="{sy(p["y"]):.1f}" r="{6 if p["kind"] != "other" else 4}" '
            f'fill="{fill}" stroke="{colors[p["kind"]]}" stroke-width="2"><title>{html.escape(p["label"])}</title>'
            "</circle>"
        )
    parts.append("</svg>")
    return "".join(parts)


def render_html(doc: dict) -> str:
    key = {"latency": "latency_ms", "energy": "energy_mj", "macs": "macs", "accuracy": "neg_acc"}[
        doc["objective"]
    ]
    pts = [
        {
            "x": p["x"],
            "y": p["y"],
            "kind": "other",
            "measured": p["measured"],
            "label": f"candidate {p['id']}",
        }
        for p in doc.get("evaluated_points", [])
    ]
    for kind, c in (
        [("baseline", doc["baseline"])]
        + [("front", c) for c in doc["front"]]
        + ([("best", doc["best"])] if doc["best"] else [])
    ):
        pts.append(
            {
                "x": c["objective_value"],
                "y": c["predicted_acc_delta"] or 0.0,
                "kind": kind,
                "measured": bool(c["measured"]),
                "label": f"{kind} {c['id']}",
            }
        )
    rows = []
    for label, c in [("input", doc["baseline"])] + ([("result", doc["best"])] if doc["best"] else []):
        m = c["measured"] or {}
        rows.append(
            f"<tr><td>{label}</td><td class=num>{_f(m.get('latency_ms'))}</td><td class=num>"
            f"{_f(m.get('energy_mj'))}</td><td>{html.escape(str(m.get('power_method')))}</td><td class=num>"
            f"{c['macs']:,}</td><td class=num>{c['params']:,}</td><td class=num>{_f(c['predicted_acc_delta'])}</td></tr>"
        )
    changes = ""
    if doc["best"]:
        items = []
        for ch in doc["best"]["changes"]:
            cert = ch.get("certificate") or {}
            items.append(
                f"<li>segment <b>{html.escape(str(ch.get('segment')))}</b> → "
                f"<b>{html.escape(str(ch.get('replacement')))}</b>"
                + (f" ({ch.get('n_nodes')} nodes)" if ch.get("n_nodes") else "")
                + (
                    f"; MILP {html.escape(str(cert.get('status')))}, objective {_f(cert.get('objective'))}, "
                    f"{_f(cert.get('solve_time_ms'))} ms"
                    if cert
                    else ""
                )
                + (
                    f"; inherited weights {100 * ch['inherited_param_share']:.1f}%"
                    if ch.get("inherited_param_share") is not None
                    else ""
                )
                + (
                    f"; grafted from candidate {html.escape(str(ch['grafted_from']))} (found on another branch)"
                    if ch.get("grafted_from")
                    else ""
                )
                + "</li>"
            )
        changes = "<h2>Changes</h2><ol>" + "".join(items) + "</ol>"
    imp = doc.get("improvement") or {}
    h2h = imp.get("latency_change_head_to_head")
    summary = (
        f"<p>latency {_pct(imp.get('latency_change'))}"
        + (f" (head to head, alternating rounds: {_pct(h2h)})" if h2h is not None else "")
        + f", energy {_pct(imp.get('energy_change'))}, "
        f"MACs {_pct(imp.get('macs_change'))}, predicted accuracy change {_f(imp.get('predicted_acc_delta'))} pp</p>"
        if imp
        else f"<p><b>{html.escape(doc.get('why_no_result', ''))}</b></p>"
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>autogo-deploy optimize</title>
<style>body{{font-family:system-ui,sans-serif;margin:24px;max-width:1000px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #dde;padding:3px 8px}}td.num{{text-align:right}}.muted{{color:#667}}
.notice{{background:#fff6e0;padding:8px;border:1px solid #eed}}</style></head>
<body data-plots-drawn="1"><h1>optimize: {html.escape(doc["input"])} on {html.escape(doc["target"])}</h1>
<p class=muted>objective {html.escape(doc["objective"])} ({key}); budgets {html.escape(json.dumps(doc["budgets"]))}{_defaulted(doc)};
stopped: {html.escape(doc["stopped"])}; {doc["candidates_evaluated"]} candidates in {doc["elapsed_s"]} s</p>
{summary}
<table><tr><th></th><th>p50 ms (measured)</th><th>energy mJ</th><th>power method</th><th>MACs</th>
<th>params</th><th>pred. acc Δ (pp)</th></tr>{"".join(rows)}</table>
<p class=notice>{html.escape(doc["notice"])}</p>
{_accuracy_note(doc.get("accuracy_note"))}
{_structure(doc.get("structure"))}
<h2>Pareto front</h2>{_scatter(pts)}
<p class=muted>filled = measured on the target, hollow = predicted only; red input, green result, blue front.</p>
{changes}
<h2>Predictor</h2><pre>{html.escape(json.dumps(doc["predictor"], indent=1))}</pre>
</body></html>"""


def _structure(st: dict | None) -> str:
    if not st:
        return ""
    a, b = st["baseline"], st["best"]
    line = (
        f"<p>weighted layers {a['weighted_layers']} → {b['weighted_layers']}, "
        f"depth {a['depth']} → {b['depth']} (exact)</p>"
    )
    if st.get("warning"):
        line += f"<p class=notice><b>warning:</b> {html.escape(st['warning'])}</p>"
    return line


def _f(v) -> str:
    return "-" if v is None else f"{v:.4g}"


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:+.1f}%"


def _accuracy_note(note: str | None) -> str:
    return f"<p class=notice><b>Accuracy:</b> {html.escape(note)}</p>" if note else ""


def _defaulted(doc: dict) -> str:
    keys = doc.get("budgets_by_default") or []
    return f" ({html.escape(', '.join(keys))} by default)" if keys else ""
