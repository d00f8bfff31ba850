"""`autogo-deploy db build|stats|show|segment`: the segment database (AutoGO's mined segments)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from autogo_deploy.cli.common import human, parse_input_shapes, print_json

db_app = typer.Typer(help="Segment database: mine, inspect and apply BPE segments.", no_args_is_help=True)

DbOption = Annotated[
    Path | None,
    typer.Option(
        "--db", help="segment database file (default: the cached default database, built on first use)"
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="print one JSON document")]


class _Console:
    """rich consoles resolved at print time (results → stdout, notes → stderr), so redirected or
    captured streams are honoured."""

    def __init__(self, stderr: bool):
        self.stderr = stderr

    def print(self, *args, **kw) -> None:
        from rich.console import Console

        Console(stderr=self.stderr, highlight=False, soft_wrap=False).print(*args, **kw)


out = _Console(stderr=False)
err = _Console(stderr=True)


def _open(path: Path | None):
    from autogo_deploy.segments.db import SegmentDB, default_db

    return SegmentDB(path) if path is not None else default_db(progress=True)


def _shape(s) -> str:
    return "x".join(map(str, s))


@db_app.command("build")
def build_cmd(
    output: Annotated[Path, typer.Option("-o", "--output", help="database file to write")] = Path(
        "segments.db"
    ),
    families: Annotated[
        list[str] | None,
        typer.Option(
            "--families",
            help="corpus families (repeatable or comma separated): nb201, nb101, fbnet, "
            "resnet, vgg, mobilenet_v2, edsr; default all",
        ),
    ] = None,  # fmt: skip
    vocab_size: Annotated[
        int, typer.Option("--vocab-size", help="BPE vocabulary size (AutoGO: 2000)")
    ] = 2000,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="worker processes")] = 2,
    seed: Annotated[int, typer.Option(help="seed of the NB101 cell sample")] = 0,
    limit: Annotated[
        int | None, typer.Option(help="cap each NAS family at N networks (quick builds)")
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Mine segments from the NAS benchmark families and the zoo into a SQLite database."""
    from autogo_deploy.segments.build import build
    from autogo_deploy.segments.progress import stderr_progress

    fams = ",".join(families) if families else None
    with stderr_progress() as cb:
        result = build(
            output, families=fams, vocab_size=vocab_size, jobs=jobs, seed=seed, limit=limit, progress=cb
        )
    if json_out:
        print_json({"schema_version": 1, **result.to_dict()})
        return
    from rich.table import Table

    t = Table(title=f"segment database {output}", show_header=False)
    t.add_row("networks", ", ".join(f"{k} {v:,}" for k, v in result.networks.items()))
    t.add_row("node tokens", f"{result.tokens:,}")
    t.add_row("BPE vocabulary", f"{result.pieces:,} pieces ({result.multi_node_pieces:,} multi-node)")
    t.add_row("segments", f"{result.segments:,}")
    t.add_row(
        "time", f"{result.seconds:.1f} s " + " ".join(f"{k}={v}s" for k, v in result.phase_seconds.items())
    )
    if result.fallbacks:
        t.add_row("loaded via graph.load", ", ".join(result.fallbacks))
    out.print(t)


@db_app.command("stats")
def stats_cmd(db: DbOption = None, json_out: JsonOption = False) -> None:
    """Segment counts by size and family, vocabulary, build parameters."""
    with _open(db) as sdb:
        stats = sdb.stats()
    if json_out:
        print_json({"schema_version": 1, **stats})
        return
    from rich.table import Table

    meta = stats["meta"]
    head = Table(title=f"segment database {stats['path']}", show_header=False)
    head.add_row("schema", str(stats["schema_version"]))
    head.add_row("networks", meta.get("networks", ""))
    head.add_row("node tokens", f"{stats['tokens']:,}")
    head.add_row("BPE vocabulary", f"{stats['pieces']:,} pieces ({stats['multi_node_pieces']:,} multi-node), "
                 f"requested {meta.get('vocab_size_requested', '?')}")  # fmt: skip
    head.add_row("segments", f"{stats['segments']:,}")
    out.print(head)
    for key, label in (("by_size", "nodes"), ("by_family", "family")):
        t = Table(title=f"segments by {label}")
        t.add_column(label)
        t.add_column("segments", justify="right")
        t.add_column("occurrences", justify="right")
        for row in stats[key]:
            t.add_row(str(row["nodes" if key == "by_size" else "family"]), f"{row['segments']:,}",
                      f"{row['occurrences']:,}")  # fmt: skip
        out.print(t)


@db_app.command("show")
def show_cmd(
    segment_id: Annotated[int, typer.Argument(help="segment id (see `db stats` / `db segment`)")],
    db: DbOption = None,
    onnx_out: Annotated[
        Path | None, typer.Option("--onnx", help="also write the segment as an ONNX model")
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Print one segment as a small graph: nodes, boundary, shapes, frequency, example sources."""
    from autogo_deploy.cli.outputs import check_outputs

    check_outputs([db], files=[("--onnx", onnx_out)])
    with _open(db) as sdb:
        rec = sdb.get(segment_id)
        model = rec.model()
    if onnx_out is not None:
        from autogo_deploy.graph import save_model

        save_model(model, onnx_out)
        err.print(f"wrote {onnx_out}")
    g = model.graph
    if json_out:
        nodes = [
            {"name": n.name, "op": n.op_type, "inputs": list(n.input), "outputs": list(n.output)}
            for n in g.node
        ]
        print_json({"schema_version": 1, **rec.to_dict(), "nodes": nodes})
        return
    from rich.table import Table

    sig = rec.signature
    head = Table(title=f"segment {rec.id} ({rec.hash})", show_header=False)
    head.add_row("boundary", f"{sig.n_inputs} in -> {sig.n_outputs} out, spatial x{sig.spatial_ratio}, "
                 f"channels x{sig.channel_ratio}")  # fmt: skip
    head.add_row("relative ports", f"in {rec.rel_inputs} out {rec.rel_outputs}")
    head.add_row("example shapes", f"in {[_shape(s) for s in rec.example_inputs]} "
                 f"out {[_shape(s) for s in rec.example_outputs]}")  # fmt: skip
    head.add_row("MACs / params", f"{human(rec.macs)} / {human(rec.params)} (at the example shapes)")
    head.add_row("frequency", f"{rec.count:,}: " + ", ".join(f"{f} {c:,}" for f, c in rec.families.items()))
    head.add_row("shapes seen", str(rec.n_shapes))
    for s in rec.sources:
        head.add_row("example", f"{s['source']}  [{', '.join(s['nodes'])}]")
    out.print(head)
    shapes = {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim] for vi in
              list(g.input) + list(g.value_info) + list(g.output)}  # fmt: skip
    inits = {t.name for t in g.initializer}
    t = Table(title="nodes")
    for col in ("node", "op", "inputs", "outputs"):
        t.add_column(col)
    for n in g.node:
        ins = [f"{x}:{_shape(shapes[x])}" for x in n.input if x and x not in inits]
        outs = [f"{x}:{_shape(shapes[x])}" for x in n.output if x]
        t.add_row(n.name, n.op_type, " ".join(ins), " ".join(outs))
    out.print(t)


@db_app.command("segment")
def segment_cmd(
    model: Annotated[Path, typer.Argument(help="ONNX model file")],
    db: DbOption = None,
    input_shape: Annotated[
        list[str] | None, typer.Option("--input-shape", help="pin an input: NAME=1x3x224x224 (repeatable)")
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Split a model into database segments (every node in exactly one) and count them."""
    from collections import Counter

    from autogo_deploy.graph import load
    from autogo_deploy.segments.segment import segment_model

    g = load(model, input_shapes=parse_input_shapes(input_shape))
    with _open(db) as sdb:
        occ = segment_model(g, sdb)
    unknown = Counter(u for o in occ for u in o.unknown)

    def key(o):
        return o.segment_id if o.segment_id is not None else o.hash

    counts = Counter(key(o) for o in occ)
    if json_out:
        print_json({"schema_version": 1, "model": str(model), "nodes": len(g.nodes), "segments": len(occ),
                    "known": sum(o.segment_id is not None for o in occ), "unknown_tokens": dict(unknown),
                    "occurrences": [o.to_dict() for o in occ]})  # fmt: skip
        return
    from rich.table import Table

    t = Table(title=f"{model.name}: {len(g.nodes)} nodes in {len(occ)} segments")
    for col in ("segment", "count", "nodes", "boundary", "ops", "first occurrence"):
        t.add_column(col, justify="right" if col in ("count", "nodes") else "left")
    seen = set()
    for o in occ:
        if key(o) in seen:
            continue
        seen.add(key(o))
        ops = " ".join(g.node(n).op_type for n in o.node_names)
        label = str(o.segment_id) if o.segment_id is not None else f"new {o.hash[:8]}"
        t.add_row(label, str(counts[key(o)]), str(len(o.node_names)),
                  str(o.signature), ops if len(ops) < 60 else ops[:57] + "...", o.node_names[0])  # fmt: skip
    out.print(t)
    novel = sum(o.segment_id is None for o in occ)
    if novel:
        err.print(f"{novel} segment(s) are not in the database (structures the corpus never produced)")
    if unknown:
        err.print("unseen node tokens (each kept as a one-node <unk> segment): "
                  + ", ".join(f"{k} x{v}" for k, v in unknown.most_common()))  # fmt: skip


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
