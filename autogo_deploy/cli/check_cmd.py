"""`autogo-deploy check MODEL --target T`: a CI gate on hardware budgets.

Exit codes: 0 every budget met, 1 a budget broken, 2 usage/input error, 3 environment error
(backend missing, harness failed), 5 inconclusive (the confidence bound still straddles a budget at
the run/time cap). See docs/ci-gate.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from autogo_deploy.cli.common import err, out, parse_input_shapes, print_json
from autogo_deploy.cli.outputs import check_outputs, write_text


def check(
    model: Annotated[Path, typer.Argument(help="ONNX model file")],
    target: Annotated[
        str, typer.Option("--target", "-t", help="target name (see `targets`) or a .toml path")
    ],
    budget: Annotated[
        list[str] | None,
        typer.Option(
            "--budget",
            "-b",
            help="METRIC=VALUE (repeatable): latency_p50_ms=8, params=5M, latency_p90_ms=+5% (needs "
            "--baseline), METRIC=none removes a limit from a file",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", help="budgets file (default: nearest autogo-budgets.toml or pyproject.toml)"
        ),
    ] = None,
    baseline: Annotated[
        Path | None,
        typer.Option(
            "--baseline", help="report JSON for relative limits (default limit: latency_p90_ms +5%)"
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON document")] = False,
    junit: Annotated[Path | None, typer.Option("--junit", help="write JUnit XML here")] = None,
    summary: Annotated[
        Path | None, typer.Option("--summary", help="append a markdown summary (e.g. $GITHUB_STEP_SUMMARY)")
    ] = None,
    deterministic: Annotated[
        bool,
        typer.Option(
            "--deterministic",
            help="no run-to-run noise: on a measured target judge the PSC predictor's figures (labelled predicted)",
        ),
    ] = False,
    drift_correct: Annotated[
        bool,
        typer.Option(
            "--drift-correct",
            help="ort targets: time a fixed reference network beside the model and judge latency at the "
            "reference's nominal speed (from --reference-ms, a drift-corrected --baseline, or the first batch)",
        ),
    ] = False,
    reference_ms: Annotated[
        float | None,
        typer.Option("--reference-ms", help="nominal reference median (ms) for --drift-correct"),
    ] = None,
    max_runs: Annotated[int | None, typer.Option("--max-runs", help="cap on measured runs")] = None,
    max_seconds: Annotated[float | None, typer.Option("--max-seconds", help="cap on measuring time")] = None,
    batch_runs: Annotated[int | None, typer.Option("--batch-runs", help="runs per measurement batch")] = None,
    input_shape: Annotated[
        list[str] | None, typer.Option("--input-shape", help="pin an input: NAME=1x3x224x224 (repeatable)")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress on stderr")] = False,
) -> None:
    """Check MODEL against its latency/energy/power/memory/size budgets on a target."""
    from autogo_deploy import check_output
    from autogo_deploy.checking import run_check
    from autogo_deploy.errors import AutogoError

    inputs = [model, config, baseline, target if target.endswith(".toml") else None]
    check_outputs(inputs, files=[("--junit", junit), ("--summary", summary)])
    settings = {"max_runs": max_runs, "max_seconds": max_seconds, "batch_runs": batch_runs}
    try:
        report = run_check(
            model,
            target,
            budget_flags=budget or [],
            config_path=config,
            baseline_path=baseline,
            deterministic=deterministic,
            settings=settings,
            drift_correct=drift_correct,
            reference_ms=reference_ms,
            input_shapes=parse_input_shapes(input_shape),
            log=(lambda _text: None) if quiet else (lambda text: err.print(f"[dim]{text}[/dim]")),
        )
    except AutogoError as exc:
        _write_error_outputs(exc, model, target, junit, summary)
        raise
    doc = report.to_dict()
    if junit is not None:
        write_text(junit, check_output.junit_xml(doc), append=False)
    if summary is not None:
        write_text(summary, check_output.markdown(doc), append=True)
    if json_out:
        print_json(doc)
    else:
        check_output.render_table(doc, out)
    raise typer.Exit(report.exit_code)


def _write_error_outputs(exc, model: Path, target: str, junit: Path | None, summary: Path | None) -> None:
    """CI still gets a JUnit file and a summary line when check cannot run (exit 2/3)."""
    import xml.etree.ElementTree as ET

    line = exc.one_line()
    if junit is not None:
        suite = ET.Element(
            "testsuite", name=f"autogo-deploy check {target}", tests="1", failures="0", errors="1"
        )
        case = ET.SubElement(suite, "testcase", classname=f"autogo_deploy.check.{target}", name="check")
        ET.SubElement(case, "error", type=type(exc).__name__, message=line).text = line
        root = ET.Element("testsuites", name="autogo-deploy", tests="1", failures="0", errors="1")
        root.append(suite)
        try:
            write_text(
                junit,
                '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n",
                append=False,
            )
        except Exception:  # the original error matters more
            pass
    if summary is not None:
        text = f"### ⛔ autogo-deploy check: ERROR — `{model}` on `{target}`\n\n{line} (exit {exc.exit_code})\n\n"
        try:
            write_text(summary, text, append=True)
        except Exception:
            pass


def register(app: typer.Typer) -> None:
    app.command("check")(check)
