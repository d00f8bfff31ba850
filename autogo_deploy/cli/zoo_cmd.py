"""`autogo-deploy zoo list` and `autogo-deploy zoo export NAME [--arch ...] -o FILE`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from autogo_deploy.cli.common import err, out, print_json

zoo_app = typer.Typer(
    help="Reference networks built directly as ONNX (seeded Kaiming weights).", no_args_is_help=True
)


@zoo_app.command("list")
def list_models(
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON document")] = False,
) -> None:
    """List the zoo networks, their input shapes and what --arch takes."""
    from autogo_deploy import zoo

    entries = zoo.catalog()
    if json_out:
        print_json(
            {
                "schema_version": 1,
                "models": [
                    {
                        "name": e.name,
                        "family": e.family,
                        "description": e.description,
                        "input_shape": list(e.input_shape),
                        "arch": e.arch_kind,
                    }
                    for e in entries
                ],
            }
        )
        return
    from rich.table import Table

    table = Table(title="model zoo (batch 1, float32, opset 17)")
    for col in ("name", "input", "description", "--arch"):
        table.add_column(col)
    for e in entries:
        table.add_row(e.name, "x".join(map(str, e.input_shape)), e.description, e.arch_kind or "-")
    out.print(table)


@zoo_app.command("export")
def export(
    name: Annotated[str, typer.Argument(help="zoo model name (see `zoo list`)")],
    output: Annotated[Path, typer.Option("-o", "--output", help="ONNX file to write")],
    arch: Annotated[
        str | None,
        typer.Option(help="NB201 arch string; NB101 JSON {matrix, ops} or 56-int NASLib key; FBNet 22 ops"),
    ] = None,
    seed: Annotated[int, typer.Option(help="weight seed (same seed, same bytes)")] = 0,
    dataset: Annotated[
        str | None,
        typer.Option(help="NB201 only: cifar10, cifar100 or ImageNet16-120 (classes + input size)"),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON document")] = False,
) -> None:
    """Build a zoo network and write it as an ONNX file."""
    from autogo_deploy import zoo
    from autogo_deploy.errors import InputError
    from autogo_deploy.graph import save_bytes

    kw = {}
    if dataset is not None:
        if name != "nb201":
            raise InputError("--dataset applies to nb201 only")
        kw["dataset"] = dataset
    if output.parent and not output.parent.is_dir():
        raise InputError(f"output folder {str(output.parent)!r} does not exist")
    if output.is_dir():
        raise InputError(f"output {str(output)!r} is a folder; give a file name such as model.onnx")
    model = zoo.build(name, seed=seed, arch=arch, **kw)
    data = model.SerializeToString()
    save_bytes(data, output)
    g = model.graph
    summary = {
        "schema_version": 1,
        "name": name,
        "file": str(output),
        "bytes": len(data),
        "seed": seed,
        "arch": arch,
        "nodes": len(g.node),
        "params": sum(_numel(t.dims) for t in g.initializer),
        "input_shape": [d.dim_value for d in g.input[0].type.tensor_type.shape.dim],
        "output_shape": [d.dim_value for d in g.output[0].type.tensor_type.shape.dim],
        "opset": 17,
    }
    if json_out:
        print_json(summary)
        return
    shape_in = "x".join(map(str, summary["input_shape"]))
    shape_out = "x".join(map(str, summary["output_shape"]))
    out.print(
        f"wrote {output} ({len(data) / 2**20:.1f} MiB, {summary['nodes']} nodes, {shape_in} -> {shape_out})"
    )
    err.print(f"[dim]next: autogo-deploy inspect {output}[/dim]")


def _numel(dims) -> int:
    n = 1
    for d in dims:
        n *= d
    return n


def register(app: typer.Typer) -> None:
    app.add_typer(zoo_app, name="zoo")
