"""Renderings of a `check` report: rich table (stdout), JUnit XML (`--junit`), markdown (`--summary`).

All three take the `CheckReport.to_dict()` document, so they show exactly what `--json` prints.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from typing import Any

from autogo_deploy.budgets import METRICS

ICONS = {"pass": "✅", "fail": "❌", "inconclusive": "⚠️"}
STYLES = {"pass": "green", "fail": "bold red", "inconclusive": "yellow"}


def fmt(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if abs(value) >= 1000 and float(value).is_integer():
        text = f"{int(value):,}"
    else:
        text = f"{value:.4g}"
    return f"{text} {unit}".rstrip()


def bound_text(row: dict[str, Any]) -> str:
    unit = row.get("unit", "")
    lo, hi = row.get("lower"), row.get("upper")
    if lo is not None and hi is not None and lo == hi:
        return "exact"
    return f"[{fmt(lo)}, {fmt(hi)}] {unit}".rstrip()


def budget_text(row: dict[str, Any]) -> str:
    unit = row.get("unit", "")
    text = f"≤ {fmt(row['limit'], unit)}"
    if row.get("kind") == "relative":
        text += f" ({row['relative_pct']:+g}% of {fmt(row['baseline'], unit)})"
    return text


def mode_line(doc: dict[str, Any]) -> str:
    if doc["mode"] == "exact":
        return "deterministic (exact): counted figures only, nothing measured"
    if doc["mode"] == "predictor":
        return "deterministic (predictor): latency/energy PREDICTED by the PSC predictor, nothing measured"
    if doc["deterministic"]:
        return f"deterministic ({doc['mode']}): exact figures, no run-to-run noise"
    gate = doc["gate"]
    line = (
        f"measured: {gate['runs']} runs in {gate['batches']} batch(es); false-fail rate ≤ "
        f"{gate['settings']['fail_alpha']:g}, false-pass rate ≤ {gate['settings']['pass_alpha']:g}"
    )
    if doc.get("reference"):
        from autogo_deploy.drift import describe

        line += f"; {describe(doc['reference'])}"
    return line


def headline(doc: dict[str, Any]) -> str:
    return f"{doc['verdict'].upper()}: {doc['model']['path']} on {doc['target']['name']}"


def render_table(doc: dict[str, Any], console) -> None:
    """Budget table plus the unbudgeted metrics, how each figure was obtained, then the verdict."""
    from rich.table import Table

    table = Table(title=f"autogo-deploy check — {doc['target']['name']}", title_justify="left")
    for col in ("metric", "budget", "estimate", "confidence bound", "status"):
        table.add_column(col, no_wrap=col == "metric")
    budgeted: dict[str, str] = {}
    for row in doc["results"]:
        budgeted[row["metric"]] = row["method"]
        status = row["status"]
        table.add_row(
            row["metric"],
            budget_text(row),
            fmt(row["estimate"], row["unit"]),
            bound_text(row),
            f"[{STYLES.get(status, 'white')}]{status}[/]",
        )
    for name, value in doc["metrics"].items():
        if name not in budgeted:
            table.add_row(name, "–", fmt(value, METRICS[name].unit), "", "[dim]info[/]")
    console.print(table)
    for name, how in {**doc["metric_methods"], **budgeted}.items():
        console.print(f"[dim]  {name}: {how}[/]")
    console.print(f"mode: {mode_line(doc)}")
    style = STYLES[doc["verdict"]]
    console.print(
        f"[{style}]{headline(doc)}[/] — {doc['reason']} (exit {doc['exit_code']}, {doc['elapsed_s']:.1f} s)"
    )


def junit_xml(doc: dict[str, Any]) -> str:
    """One <testsuite>, one <testcase> per budget; broken → <failure>, inconclusive → <error>."""
    rows = doc["results"]
    fails = sum(r["status"] == "fail" for r in rows)
    errs = sum(r["status"] == "inconclusive" for r in rows)
    suite = ET.Element(
        "testsuite",
        name=f"autogo-deploy check {doc['target']['name']}",
        tests=str(len(rows)),
        failures=str(fails),
        errors=str(errs),
        skipped="0",
        time=f"{doc['elapsed_s']:.3f}",
    )
    props = ET.SubElement(suite, "properties")
    for key, value in (
        ("verdict", doc["verdict"]),
        ("exit_code", doc["exit_code"]),
        ("deterministic", str(doc["deterministic"]).lower()),
        ("mode", doc["mode"]),
        ("model", doc["model"]["path"]),
        ("model_sha256", doc["model"]["sha256"]),
        ("target", doc["target"]["name"]),
        ("runs", doc["gate"]["runs"]),
        ("fail_alpha", doc["gate"]["settings"]["fail_alpha"]),
    ):
        ET.SubElement(props, "property", name=key, value=str(value))
    for row in rows:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"autogo_deploy.check.{doc['target']['name']}",
            name=f"{row['metric']} {budget_text(row)}",
            time="0",
        )
        detail = f"estimate {fmt(row['estimate'], row['unit'])}, bound {bound_text(row)}; {row['method']}"
        if row["status"] == "fail":
            ET.SubElement(case, "failure", type="budget", message=f"budget broken: {detail}").text = detail
        elif row["status"] == "inconclusive":
            ET.SubElement(case, "error", type="inconclusive", message=f"inconclusive: {detail}").text = detail
        else:
            ET.SubElement(case, "system-out").text = detail
    out = ET.SubElement(suite, "system-out")
    out.text = f"{headline(doc)} — {doc['reason']}\nmode: {mode_line(doc)}"
    root = ET.Element(
        "testsuites", name="autogo-deploy", tests=str(len(rows)), failures=str(fails), errors=str(errs)
    )
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def markdown(doc: dict[str, Any]) -> str:
    """A section for $GITHUB_STEP_SUMMARY (appended by the CLI, so several checks can share it)."""
    icon = ICONS[doc["verdict"]]
    lines = [
        f"### {icon} autogo-deploy check: {doc['verdict'].upper()} — `{doc['model']['path']}` on `{doc['target']['name']}`",
        "",
        f"{_md(doc['reason'])}. Mode: **{_md(mode_line(doc))}**.",
        "",
        "| metric | budget | estimate | confidence bound | status |",
        "|---|---|---|---|---|",
    ]
    for row in doc["results"]:
        status = f"{ICONS.get(row['status'], '')} {row['status']}"
        lines.append(
            f"| `{row['metric']}` | {_md(budget_text(row))} | {_md(fmt(row['estimate'], row['unit']))} "
            f"| {_md(bound_text(row))} | {status} |"
        )
    lines += ["", "<details><summary>all metrics</summary>", "", "| metric | value | how |", "|---|---|---|"]
    for name, value in doc["metrics"].items():
        lines.append(
            f"| `{name}` | {_md(fmt(value, METRICS[name].unit))} | {_md(doc['metric_methods'][name])} |"
        )
    lines += ["", "</details>", "", f"Exit code {doc['exit_code']}, {doc['elapsed_s']:.1f} s.", ""]
    return "\n".join(lines)
