"""`autogo-deploy inspect MODEL`: op histogram, params, MACs, input/output shapes, per-node table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from autogo_deploy.cli.common import err, human, out, parse_input_shapes, print_json


def inspect(
    model: Annotated[Path, typer.Argument(help="ONNX model file")],
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON document")] = False,
    input_shape: Annotated[
        list[str] | None, typer.Option("--input-shape", help="pin an input: NAME=1x3x224x224 (repeatable)")
    ] = None,
    cleanup: Annotated[bool, typer.Option(help="onnxslim cleanup before analysis")] = True,
    fold_bn: Annotated[bool, typer.Option("--fold-bn", help="fold BatchNorm into Conv")] = False,
    verify: Annotated[bool, typer.Option(help="check cleanup keeps outputs (onnxruntime)")] = True,
    limit: Annotated[int, typer.Option(help="rows of the per-node table (0 = all)")] = 40,
) -> None:
    """Describe a model: op histogram, parameters, MACs, shapes and per-node features."""
    from autogo_deploy.graph import load

    g = load(
        model, input_shapes=parse_input_shapes(input_shape), cleanup=cleanup, fold_bn=fold_bn, verify=verify
    )
    totals = g.totals()
    if json_out:
        print_json(
            {
                "schema_version": 1,
                "model": str(model),
                "totals": totals,
                "op_histogram": g.op_histogram(),
                **g.io_shapes(),
                "notes": g.notes,
                "nodes": [n.to_dict() for n in g.nodes],
            }
        )
        return
    from rich.table import Table

    for note in g.notes:
        err.print(f"[dim]note: {note}[/dim]")
    summary = Table(title=f"{model.name}", show_header=False)
    summary.add_row("nodes", str(totals["nodes"]))
    summary.add_row("MACs", f"{human(totals['macs'])} ({totals['macs']:,})")
    summary.add_row("params", f"{human(totals['params'])} ({totals['params']:,})")
    summary.add_row("activations", f"{totals['activation_bytes'] / 2**20:.2f} MiB")
    for kind, shapes in g.io_shapes().items():
        for name, shape in shapes.items():
            summary.add_row(kind[:-1], f"{name}: {'x'.join(map(str, shape))}")
    out.print(summary)
    hist = Table(title="operators")
    hist.add_column("op")
    hist.add_column("count", justify="right")
    hist.add_column("MACs", justify="right")
    for op, count in g.op_histogram().items():
        macs = sum(n.macs for n in g.nodes if n.op_type == op)
        hist.add_row(op, str(count), human(macs) if macs else "-")
    out.print(hist)
    nodes = Table(title="nodes (canonical order)")
    for col in ("#", "name", "op", "kernel", "stride", "group", "in", "out", "MACs", "params"):
        nodes.add_column(col, justify="right" if col in ("#", "MACs", "params", "group") else "left")
    shown = g.nodes if limit <= 0 else g.nodes[:limit]
    for n in shown:
        nodes.add_row(
            str(n.index),
            n.name,
            n.op_type,
            "x".join(map(str, n.kernel)) if n.kernel else "",
            "x".join(map(str, n.stride)) if n.stride else "",
            str(n.group) if n.group != 1 else "",
            "x".join(map(str, n.in_shapes[0])) if n.in_shapes else "",
            "x".join(map(str, n.out_shapes[0])) if n.out_shapes else "",
            human(n.macs) if n.macs else "",
            human(n.params) if n.params else "",
        )
    out.print(nodes)
    if len(shown) < len(g.nodes):
        err.print(f"[dim]{len(g.nodes) - len(shown)} more nodes; use --limit 0 to show all[/dim]")


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect)
