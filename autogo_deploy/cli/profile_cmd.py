"""`autogo-deploy profile MODEL --target T`: measured latency percentiles, top operators, power and
energy (with their method), as a rich table, one JSON document, an HTML and/or a markdown report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from autogo_deploy.cli.common import err, human, out, parse_input_shapes, print_json
from autogo_deploy.cli.outputs import check_outputs, write_text


def _progress_text(event: dict[str, Any], rel_goal: float | None) -> str:
    phase = event.get("phase", "")
    if phase == "warmup":
        return f"warming up: {event.get('runs', 0)} runs"
    if phase == "timing":
        ci = event.get("ci95_rel")
        ci_text = f"median 95% CI ±{100 * ci:.2f}%" if isinstance(ci, int | float) else "CI needs more runs"
        goal = f" (goal ±{100 * rel_goal:g}%)" if rel_goal else ""
        return f"timing: {event.get('runs', 0)} runs, {event.get('elapsed_s', 0.0):.1f} s, {ci_text}{goal}"
    if phase == "per-node":
        return "profiling per-node times"
    return "measuring"


def _render(doc: dict[str, Any], top: int) -> None:
    from rich.table import Table

    from autogo_deploy.report.json_report import graph_nodes_label

    model, lat, power, target = doc["model"], doc["latency"], doc["power"], doc["target"]
    head = Table(title=f"{Path(model['source']).name} on {target['name']}", show_header=False)
    head.add_row(
        "target", f"{target['name']} ({target['backend']}, {target['device']}) {target['description']}"
    )
    head.add_row("nodes", str(model.get("nodes")))
    if model.get("macs") is not None:
        head.add_row("MACs", f"{human(model['macs'])} ({model['macs']:,})")
    if model.get("params") is not None:
        head.add_row("params", f"{human(model['params'])} ({model['params']:,})")
    method = doc.get("method", {})
    head.add_row(
        "threads / EP", f"{method.get('threads', '?')} / {method.get('ep', doc['target']['backend'])}"
    )
    out.print(head)

    latency = Table(title="latency (ms)")
    for col in ("p50", "p90", "p99", "mean", "std", "runs", "median 95% CI", "stop"):
        latency.add_column(col, justify="right")
    ci = f"±{100 * lat['ci95_rel']:.2f}%" if lat.get("ci95_rel") is not None else "n/a"
    latency.add_row(
        *(f"{lat[k]:.4g}" for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms")),
        str(lat["runs"]),
        ci,
        str(lat.get("stop_reason")),
    )
    out.print(latency)

    energy = Table(title="power and energy")
    for col in ("energy / inference (mJ)", "average power (W)", "method"):
        energy.add_column(col)
    if power.get("method"):
        energy.add_row(f"{power['energy_mj']:.4g}", f"{power['power_w']:.4g}", power["method"])
    else:
        note = (power.get("detail") or {}).get("note", "no power method available")
        energy.add_row("n/a", "n/a", note)
    out.print(energy)
    if power.get("method") == "modeled":
        err.print(
            "[dim]note: power is modeled (no energy counter here), not measured; see docs/profiling.md[/dim]"
        )

    ops = doc.get("operators")
    if ops:
        kernels = Table(title=f"top {min(top, len(ops['kernels']))} kernels")
        for col in ("kernel", "op", "ms", "share", "graph nodes", "mapping"):
            kernels.add_column(col, justify="right" if col in ("ms", "share") else "left")
        for k in ops["kernels"][:top]:
            nodes = graph_nodes_label(k)
            kernels.add_row(
                k["name"],
                k["op_type"],
                f"{k['ms']:.4f}",
                f"{100 * k['share']:.1f}%",
                nodes,
                k.get("mapping", ""),
            )
        out.print(kernels)
        types = Table(title="time per operator type")
        for col in ("op type", "ms", "share", "kernels"):
            types.add_column(col, justify="left" if col == "op type" else "right")
        for t in ops["by_op_type"][:top]:
            types.add_row(t["op_type"], f"{t['ms']:.4f}", f"{100 * t['share']:.1f}%", str(t["kernels"]))
        out.print(types)


def profile(
    model: Annotated[Path, typer.Argument(help="ONNX model file")],
    target: Annotated[
        str, typer.Option("--target", "-t", help="target name (see `targets`) or a .toml path")
    ],
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON document")] = False,
    report: Annotated[
        Path | None, typer.Option("--report", help="write a self-contained HTML report")
    ] = None,
    markdown: Annotated[Path | None, typer.Option("--markdown", help="write a markdown summary")] = None,
    input_shape: Annotated[
        list[str] | None, typer.Option("--input-shape", help="pin an input: NAME=1x3x224x224 (repeatable)")
    ] = None,
    per_node: Annotated[bool, typer.Option("--per-node/--no-per-node", help="per-kernel times")] = True,
    cleanup: Annotated[bool, typer.Option(help="onnxslim cleanup before measuring")] = True,
    min_runs: Annotated[int | None, typer.Option(help="override the target's min_runs")] = None,
    max_runs: Annotated[int | None, typer.Option(help="override the target's max_runs")] = None,
    time_cap_s: Annotated[float | None, typer.Option(help="override the target's time cap (s)")] = None,
    rel_ci: Annotated[float | None, typer.Option(help="CI goal as a fraction, e.g. 0.01 = ±1%")] = None,
    timeout_s: Annotated[float | None, typer.Option(help="kill the harness after this many seconds")] = None,
    seed: Annotated[int, typer.Option(help="seed of the random inputs")] = 0,
    top: Annotated[int, typer.Option(help="rows in the operator tables")] = 10,
) -> None:
    """Measure a model on a target: percentiles, top operators, power/energy with their method."""
    from autogo_deploy.report.json_report import profile_document
    from autogo_deploy.target import load_target

    inputs = [model, target if target.endswith(".toml") else None]
    check_outputs(inputs, files=[("--report", report), ("--markdown", markdown)])
    tgt = load_target(target)
    goal = rel_ci if rel_ci is not None else tgt.protocol.get("rel_ci")
    with err.status(f"measuring {model.name} on {tgt.name}", spinner="dots") as status:

        def progress(event: dict[str, Any]) -> None:
            status.update(_progress_text(event, goal))

        doc = profile_document(
            model,
            tgt,
            input_shapes=parse_input_shapes(input_shape),
            cleanup=cleanup,
            per_node=per_node,
            seed=seed,
            progress=progress,
            min_runs=min_runs,
            max_runs=max_runs,
            time_cap_s=time_cap_s,
            rel_ci=rel_ci,
            timeout_s=timeout_s,
        )
    if report is not None:
        from autogo_deploy.report.html import render_profile_html

        write_text(report, render_profile_html(doc))
        err.print(f"HTML report written to {report}")
    if markdown is not None:
        from autogo_deploy.report.markdown import render_profile_markdown

        write_text(markdown, render_profile_markdown(doc, top=top))
        err.print(f"markdown summary written to {markdown}")
    if json_out:
        print_json(doc)
    else:
        _render(doc, top)


def register(app: typer.Typer) -> None:
    app.command("profile")(profile)
