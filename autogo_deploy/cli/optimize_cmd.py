"""`autogo-deploy optimize MODEL --target T`: constrained AutoGO search → measured, deployable ONNX."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from autogo_deploy.cli.common import err, out, parse_input_shapes, print_json


def optimize(
    model: Annotated[str, typer.Argument(help="ONNX file, or zoo:NAME for a built-in network")],
    target: Annotated[str, typer.Option("--target", "-t", help="target name or TOML path")] = "ort-cpu",
    budget: Annotated[
        list[str] | None,
        typer.Option(
            "--budget",
            "-b",
            help="KEY=VALUE: latency_ms energy_mj power_w params macs peak_mem_mb acc_drop depth_drop width_drop",
        ),
    ] = None,
    objective: Annotated[str, typer.Option(help="latency | energy | macs | accuracy")] = "latency",
    strategy: Annotated[str, typer.Option(help="pareto (AutoGO) | random (baseline search)")] = "pareto",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write the best model here")] = None,
    front: Annotated[Path | None, typer.Option("--front", help="write every front member into DIR")] = None,
    report: Annotated[Path | None, typer.Option("--report", help="HTML report")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print the report as one JSON document")] = False,
    generations: Annotated[int, typer.Option(min=1, help="search generations")] = 4,
    population: Annotated[int, typer.Option(min=1, help="mutants proposed per generation")] = 12,
    measure_top: Annotated[int, typer.Option(min=0, help="candidates measured per generation")] = 2,
    measure_top_exact: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="measured per generation when the target is deterministic (npu-sim); default: --measure-top",
        ),
    ] = None,
    parent_share: Annotated[
        str,
        typer.Option(help="children per front member: auto (rank on deterministic targets) | even | rank"),
    ] = "auto",
    front_strata: Annotated[
        str,
        typer.Option(
            help="parents by depth: depth (the cheapest member of each depth holds a front slot) | off |"
            " auto (depth on deterministic targets)"
        ),
    ] = "auto",
    segment_weight: Annotated[
        str,
        typer.Option(
            help="how source segments are drawn: macs (MACs + weight traffic) | target (npu-sim's modeled latency)"
        ),
    ] = "macs",
    escape_after: Annotated[
        int | None,
        typer.Option(
            help="after N generations without a better measured result, half the children take two changes at once"
        ),
    ] = None,
    widen_share: Annotated[
        float,
        typer.Option(
            help="share of mutations whose source segment is first grown over neighbouring segments (0 to 1)"
        ),
    ] = 0.0,
    graft: Annotated[
        int | None,
        typer.Option(
            help="per generation, replay up to N changes that paid off elsewhere in the search on the best so far"
            " (0: off; default 2 on npu-sim, where mutants are costed exactly, else 0)"
        ),
    ] = None,
    spill_mb: Annotated[
        float,
        typer.Option(help="mutants of at least this many MB wait in temporary files, not in memory"),
    ] = 256.0,
    time_limit: Annotated[float | None, typer.Option("--time-limit", min=0.0, help="seconds")] = None,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    space: Annotated[str | None, typer.Option(help="restrict mutations: nb201")] = None,
    arch: Annotated[str | None, typer.Option(help="NB201 arch string (with --space nb201)")] = None,
    evaluator: Annotated[str | None, typer.Option(help='command scoring a candidate: "CMD {model}"')] = None,
    jobs: Annotated[int | None, typer.Option(help="parallel mutation workers (default: cores)")] = None,
    checkpoint: Annotated[Path | None, typer.Option(help="checkpoint folder (JSON + ONNX)")] = None,
    resume: Annotated[bool, typer.Option(help="resume from --checkpoint")] = False,
    input_shape: Annotated[list[str] | None, typer.Option("--input-shape", help="NAME=1x3x224x224")] = None,
    db: Annotated[
        Path | None, typer.Option("--db", help="segment database (default: built into the cache)")
    ] = None,
    max_runs: Annotated[int | None, typer.Option(help="cap on timed runs per measurement")] = None,
    head_to_head: Annotated[
        int,
        typer.Option(
            "--head-to-head",
            min=0,
            help="rounds of input-vs-result measurements (alternating order) that must confirm the gain "
            "before a model is written; 0 skips (simulated targets always skip)",
        ),
    ] = 6,
) -> None:
    """Evolve a model's computation graph for a target under budgets; write the best measured model."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from autogo_deploy import api
    from autogo_deploy.cli.outputs import check_outputs, write_text
    from autogo_deploy.graph import save_bytes
    from autogo_deploy.report.optimize_report import build_doc, render_html

    check_outputs(
        [model, db, target if target.endswith(".toml") else None],
        files=[("-o", output), ("--report", report)],
        folders=[("--front", front), ("--checkpoint", checkpoint)],
    )
    progress = Progress(
        TextColumn("[bold]gen {task.completed}/{task.total}"),
        BarColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
        disable=not err.is_terminal,  # a log file gets plain lines instead (below)
    )
    task = progress.add_task("search", total=generations, info="starting")

    def on_generation(entry: dict) -> None:
        info = (
            f"{entry['new_valid']} new, {entry['candidates_per_s']:.2f} cand/s, best "
            f"{entry['best_cost']:.4g} ({'measured' if entry['best_measured'] else 'predicted'})"
        )
        progress.update(task, completed=entry["generation"], info=info)
        if not err.is_terminal:
            err.print(
                f"gen {entry['generation']}/{generations}: {info}, {entry['elapsed_s']:.0f} s", soft_wrap=True
            )

    def on_status(msg: str) -> None:
        progress.update(task, info=msg)
        if not err.is_terminal:
            err.print(msg, soft_wrap=True)

    overrides = {"max_runs": max_runs} if max_runs else None
    with progress:
        result = api.optimize(
            model,
            target,
            budgets=budget,
            objective=objective,
            generations=generations,
            population=population,
            measure_top=measure_top,
            measure_top_exact=measure_top_exact,
            parent_share=parent_share,
            front_strata=front_strata,
            segment_weight=segment_weight,
            escape_after=escape_after,
            widen_share=widen_share,
            graft=graft,
            spill_mb=spill_mb,
            time_limit_s=time_limit,
            seed=seed,
            strategy=strategy,
            space=space,
            arch=arch,
            evaluator=evaluator,
            jobs=jobs,
            checkpoint=checkpoint,
            resume=resume,
            input_shapes=parse_input_shapes(input_shape),
            db_path=db,
            measure_overrides=overrides,
            head_to_head_rounds=head_to_head,
            on_generation=on_generation,
            on_status=on_status,
        )
    best = result.best
    if best and output:
        save_bytes(best.model_bytes, output)
    if front:
        for c in result.search.front:
            save_bytes(c.model_bytes, front / f"{c.cid}.onnx")
    doc = build_doc(result, output=str(output) if output else None, front_dir=str(front) if front else None)
    if report:
        write_text(report, render_html(doc))
    if json_out:
        print_json(doc)
        return
    _render(doc)
    if best is None:
        err.print(f"[yellow]{doc['why_no_result']}[/yellow]")


def _render(doc: dict) -> None:
    from rich.table import Table

    t = Table(title=f"optimize {doc['input']} on {doc['target']} ({doc['objective']})")
    for col in ("", "p50 ms", "energy mJ", "power", "MACs", "params", "pred. acc Δ pp"):
        t.add_column(col, justify="right" if col else "left")
    for label, c in [("input (measured)", doc["baseline"])] + (
        [("result (measured)", doc["best"])] if doc["best"] else []
    ):
        m = c["measured"] or {}
        t.add_row(
            label,
            _f(m.get("latency_ms")),
            _f(m.get("energy_mj")),
            str(m.get("power_method") or "-"),
            f"{c['macs']:,}",
            f"{c['params']:,}",
            _f(c["predicted_acc_delta"]),
        )
    out.print(t)
    if doc.get("budgets_by_default"):
        given = ", ".join(f"{k}={doc['budgets'][k]:g}" for k in doc["budgets_by_default"])
        out.print(f"[dim]default budget(s): {given} (override with --budget KEY=VALUE)[/dim]")
    imp = doc.get("improvement")
    if imp:
        out.print(
            f"latency {_pct(imp['latency_change'])}  energy {_pct(imp['energy_change'])}  "
            f"MACs {_pct(imp['macs_change'])}  ({len(doc['best']['changes'])} change(s); "
            f"{doc['candidates_evaluated']} candidates, {doc['elapsed_s']} s, stopped: {doc['stopped']})"
        )
        if imp.get("latency_change_head_to_head") is not None:
            lo, hi = imp["latency_ratio_ci95_head_to_head"]
            out.print(
                f"head to head (input and result in alternating rounds): latency "
                f"{_pct(imp['latency_change_head_to_head'])} [95% CI {_pct(lo - 1)}, {_pct(hi - 1)}]"
            )
        for ch in doc["best"]["changes"]:
            cert = ch.get("certificate") or {}
            out.print(
                f"  • {ch.get('segment')} → {ch.get('replacement')}"
                + (f"  MILP {cert.get('status')} {_f(cert.get('solve_time_ms'))} ms" if cert else "")
                + (
                    f"  inherited {100 * ch['inherited_param_share']:.0f}%"
                    if ch.get("inherited_param_share") is not None
                    else ""
                )
                + ("  (grafted)" if ch.get("grafted_from") else "")
            )
        if doc["best"].get("arch"):
            out.print(f"  arch: {doc['best']['arch']}")
    structure = doc.get("structure") or {}
    if structure:
        out.print(
            f"weighted layers {structure['baseline']['weighted_layers']} → {structure['best']['weighted_layers']}, "
            f"depth {structure['baseline']['depth']} → {structure['best']['depth']} (exact)"
        )
    if structure.get("warning"):
        out.print(f"[yellow]warning: {structure['warning']}[/yellow]")
    if doc.get("accuracy_note"):
        out.print(f"[yellow]accuracy: {doc['accuracy_note']}[/yellow]")
    out.print(f"[dim]{doc['notice']}[/dim]")
    out.print(f"[dim]predictor: {json.dumps(doc['predictor'])}[/dim]")


def _f(v) -> str:
    return "-" if v is None else f"{v:.4g}"


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:+.1f}%"


def register(app: typer.Typer) -> None:
    app.command("optimize")(optimize)
