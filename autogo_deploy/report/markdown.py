"""Markdown summary of a profile document (for PR comments, CI job summaries, READMEs)."""

from __future__ import annotations

from typing import Any

from autogo_deploy.report.json_report import graph_nodes_label


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_profile_markdown(doc: dict[str, Any], top: int = 10) -> str:
    """A compact markdown report: model, latency, power (with its method), top kernels."""
    lat, power, model, target = doc["latency"], doc.get("power") or {}, doc["model"], doc["target"]
    ci = f"±{100 * lat['ci95_rel']:.2f}%" if lat.get("ci95_rel") is not None else "n/a"
    lines = [
        f"### Profile of `{_cell(model.get('source'))}` on `{target['name']}`",
        "",
        f"{_cell(target.get('description') or '')} (backend `{target['backend']}`, device `{target['device']}`)",
        "",
        "| metric | value |",
        "|---|---|",
        f"| p50 / p90 / p99 latency (ms) | {_num(lat['p50_ms'])} / {_num(lat['p90_ms'])} / {_num(lat['p99_ms'])} |",
        f"| mean ± std (ms) | {_num(lat['mean_ms'])} ± {_num(lat['std_ms'])} |",
        f"| runs (median 95% CI) | {lat['runs']} ({ci}, stop: {lat.get('stop_reason')}) |",
        f"| energy per inference (mJ) | {_num(power.get('energy_mj'))} ({power.get('method') or 'unavailable'}) |",
        f"| average power (W) | {_num(power.get('power_w'))} ({power.get('method') or 'unavailable'}) |",
        f"| MACs / params | {_num(model.get('macs'))} / {_num(model.get('params'))} |",
        "",
    ]
    ops = doc.get("operators")
    if ops:
        lines += [
            f"Top {min(top, len(ops['kernels']))} kernels:",
            "",
            "| kernel | op type | ms | share | graph nodes | mapping |",
            "|---|---|---:|---:|---|---|",
        ]
        for k in ops["kernels"][:top]:
            nodes = graph_nodes_label(k)
            lines.append(
                f"| {_cell(k['name'])} | {_cell(k['op_type'])} | {_num(float(k['ms']), 4)} | "
                f"{100 * k['share']:.1f}% | {_cell(nodes)} | {_cell(k.get('mapping', 'n/a'))} |"
            )
        lines.append("")
    if power.get("method") == "modeled":
        lines.append("_Power is modeled (no energy counter on this machine), not measured._")
        lines.append("")
    return "\n".join(lines)
