"""`autogo-deploy predictor train|eval|collect|calibrate|fewshot|accuracy` — the PSC predictor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from autogo_deploy.cli.common import err, out, print_json

predictor_app = typer.Typer(
    help="The hardware-conditioned PSC predictor: train, evaluate, collect, calibrate, few-shot.",
    no_args_is_help=True,
)

CheckpointOpt = Annotated[
    Path | None, typer.Option("--checkpoint", help="checkpoint folder (default: the default checkpoint)")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON document")]


def _log(msg: str) -> None:
    err.print(f"[dim]{msg}[/dim]")


def _predictor(path: Path | None):
    from autogo_deploy.predictor.inference import Predictor

    return Predictor.load(path) if path else Predictor.load_default()


@predictor_app.command("train")
def train_cmd(
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="checkpoint folder (default: cache folder)")
    ] = None,
    epochs: Annotated[int, typer.Option(min=1, help="training epochs")] = 25,
    hidden: Annotated[int, typer.Option(min=4, help="hidden width")] = 64,
    layers: Annotated[int, typer.Option(min=1, help="message-passing rounds")] = 4,
    basis: Annotated[int, typer.Option(min=1, help="latency basis size K")] = 8,
    seed: Annotated[int, typer.Option(help="seed (split, init, batches)")] = 0,
    rows: Annotated[str, typer.Option(help="NB201 rows: 'train' (80% split) or 'all'")] = "train",
    fbnet: Annotated[int, typer.Option(min=0, help="FBNet latency rows to add")] = 0,
    own: Annotated[
        list[str] | None, typer.Option("--own", help="target whose collected measurements to add")
    ] = None,
    db: Annotated[Path | None, typer.Option(help="measurement database (default: cache folder)")] = None,
    time_budget_s: Annotated[float | None, typer.Option(help="stop after the epoch that passes this")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Train a checkpoint on ../shared/data (+ own measurements); safetensors + JSON manifest."""
    from autogo_deploy.predictor.tasks import train_checkpoint
    from autogo_deploy.predictor.train import TrainConfig

    cfg = TrainConfig(
        epochs=epochs, hidden=hidden, layers=layers, basis=basis, seed=seed, time_budget_s=time_budget_s
    )
    ck = train_checkpoint(out_dir, cfg=cfg, rows=rows, fbnet_rows=fbnet, own_db=db, own_targets=tuple(own or ()),
                          log=_log)  # fmt: skip
    doc = {"checkpoint": str(ck.path), "id": ck.id, "targets": ck.manifest["model"]["devices"],
           "seconds_training": ck.manifest["train"]["seconds_training"]}  # fmt: skip
    if json_out:
        print_json(doc)
    else:
        out.print(f"wrote checkpoint {ck.path} (id {ck.id}, {doc['seconds_training']:.0f} s training)")


@predictor_app.command("eval")
def eval_cmd(checkpoint: CheckpointOpt = None, db: Annotated[Path | None, typer.Option()] = None,
             json_out: JsonOpt = False) -> None:  # fmt: skip
    """Held-out figures: NB201 accuracy ranking, trained-device latency, own-target latency."""
    from autogo_deploy.predictor.tasks import evaluate

    rep = evaluate(_predictor(checkpoint), db=db, log=_log)
    if json_out:
        print_json(rep)
        return
    from rich.table import Table

    a = rep["accuracy_cifar10"]
    out.print(f"accuracy (CIFAR-10, {a['n']} held-out NB201 archs): Spearman {a['spearman']:.4f}, "
              f"Kendall {a['kendall']:.4f}")  # fmt: skip
    table = Table(title="latency on held-out graphs (predicted vs measured)")
    for col in ("target", "n", "Spearman", "within ±10%", "median rel. error"):
        table.add_column(col)
    by_space = [(f"{t} · {sp}", m) for t, d in rep["own_by_space"].items() for sp, m in d.items()]
    for name, m in list(rep["latency"].items()) + list(rep["own"].items()) + by_space:
        table.add_row(name, str(m["n"]), f"{m['spearman']:.4f}", f"{100 * m['within_10pct']:.1f}%",
                      f"{100 * m['median_rel_error']:.1f}%")  # fmt: skip
    out.print(table)


@predictor_app.command("collect")
def collect_cmd(
    target: Annotated[str, typer.Option("--target", "-t", help="target name or TOML path")],
    space: Annotated[str, typer.Option(help="nb201 | fbnet | zoo | zoo-walk")] = "nb201",
    n: Annotated[int, typer.Option("-n", min=1, help="networks to measure in this run")] = 50,
    seed: Annotated[int, typer.Option(help="seed of the network sequence")] = 0,
    db: Annotated[Path | None, typer.Option(help="measurement database (default: cache folder)")] = None,
    min_runs: Annotated[int, typer.Option(min=1)] = 30,
    max_runs: Annotated[int, typer.Option(min=1)] = 300,
    time_cap_s: Annotated[float, typer.Option(help="timed phase cap per network")] = 5.0,
    max_ci95_rel: Annotated[
        float, typer.Option(help="re-measure (then refuse) results noisier than this")
    ] = 0.05,
    drift_correct: Annotated[
        bool,
        typer.Option(
            "--drift-correct",
            help="ort targets: time a reference network beside each measurement and store latency at one "
            "nominal reference speed per database (see docs/ci-gate.md, drift correction)",
        ),
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Measure networks of a space on a target into SQLite (resumable: stored ones are skipped)."""
    from autogo_deploy.predictor.collect import MeasurementStore, collect

    store = MeasurementStore(db)
    try:
        kw = {"min_runs": min_runs, "max_runs": max(max_runs, min_runs), "time_cap_s": time_cap_s}
        stats = collect(target, space, n, seed=seed, store=store, measure_kw=kw, max_ci95_rel=max_ci95_rel,
                        progress=_log, drift_correct=drift_correct)  # fmt: skip
    finally:
        store.close()
    stats["db"] = str(store.path)
    if json_out:
        print_json(stats)
    else:
        out.print(f"measured {stats['measured']}, failed {stats['failed']}, too noisy {stats['noisy']}, already stored "
                  f"{stats['skipped_existing']} ({stats['seconds']:.0f} s) → {store.path}")  # fmt: skip


@predictor_app.command("calibrate")
def calibrate_cmd(
    target: Annotated[str, typer.Option("--target", "-t", help="target name or TOML path")],
    checkpoint: CheckpointOpt = None,
    from_db: Annotated[
        bool,
        typer.Option(
            "--from-db",
            help="fit on the measurements `predictor collect` stored for the target (the checkpoint's "
            "held-out ones excluded) instead of measuring the 10 reference archs",
        ),
    ] = False,
    db: Annotated[
        Path | None, typer.Option(help="measurement database for --from-db (default: cache)")
    ] = None,
    into_checkpoint: Annotated[
        bool,
        typer.Option(
            "--into-checkpoint",
            help="store the embedding in the checkpoint folder (it travels with the checkpoint) "
            "instead of this machine's cache folder",
        ),
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Fit a target's embedding: measure HELP's 10 NB201 reference archs on it, or (--from-db) use
    its collected measurements. Stored in the cache folder unless --into-checkpoint."""
    from autogo_deploy.cli.outputs import write_text
    from autogo_deploy.predictor import checkpoint as ckpt
    from autogo_deploy.predictor.inference import embeddings_dir
    from autogo_deploy.predictor.own import calibrate_from_store
    from autogo_deploy.predictor.tasks import calibrate
    from autogo_deploy.target import load_target

    if db is not None and not from_db:
        raise typer.BadParameter("--db needs --from-db")
    predictor = _predictor(checkpoint)
    if from_db:
        name = load_target(target).name
        emb = calibrate_from_store(predictor, name, db=db, log=_log)
    else:
        emb = calibrate(predictor, target, log=_log)
    if into_checkpoint:
        where = ckpt.embedding_file(predictor.checkpoint.path, emb.name)
    else:
        where = embeddings_dir(predictor.id) / f"{emb.name}.json"
    if from_db or into_checkpoint:  # calibrate() itself keeps a measured calibration in the cache
        write_text(where, json.dumps(emb.to_dict(), indent=2) + "\n")
    if json_out:
        print_json(dict(emb.to_dict(), stored=str(where)))
    elif from_db:
        out.print(f"embedding for {emb.name} fitted on {emb.fit['measurements']} collected measurements "
                  f"({100 * emb.fit['within_10pct_in_sample']:.1f}% within ±10% in sample) → {where}")  # fmt: skip
    else:
        errs = emb.fit.get("reference_rel_error", [])
        worst = max((abs(e) for e in errs), default=0.0)
        out.print(f"embedding for {emb.name} stored in {where} (checkpoint {emb.checkpoint}); worst "
                  f"reference fit error {100 * worst:.1f}%")  # fmt: skip


@predictor_app.command("fewshot")
def fewshot_cmd(
    measurements: Annotated[
        Path, typer.Option(help="CSV with arch_str,latency_ms (HELP's 10 reference archs)")
    ],
    output: Annotated[Path, typer.Option("--out", help="CSV to write: arch_str,predicted_latency_ms")],
    space: Annotated[str, typer.Option(help="search space")] = "nb201",
    checkpoint: CheckpointOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Predict the latency of every arch of a space on a device known only by its reference latencies."""
    from autogo_deploy.cli.outputs import check_outputs, write_text
    from autogo_deploy.predictor.tasks import check_space, csv_text, fewshot_space

    check_space(space)
    check_outputs([measurements], files=[("--out", output)])
    archs, pred, emb = fewshot_space(_predictor(checkpoint), measurements, space, log=_log)
    write_text(output, csv_text(("arch_str", "predicted_latency_ms"), zip(archs, pred, strict=True)))
    doc = {"out": str(output), "rows": len(archs), "embedding": emb.to_dict(), "source": "predicted"}
    if json_out:
        print_json(doc)
    else:
        out.print(f"wrote {len(archs)} predicted latencies to {output} (λ = {emb.fit['lambda']})")


@predictor_app.command("accuracy")
def accuracy_cmd(
    output: Annotated[Path, typer.Option("--out", help="CSV to write: arch_str,predicted_cifar10_acc")],
    space: Annotated[str, typer.Option(help="search space")] = "nb201",
    checkpoint: CheckpointOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Predicted CIFAR-10 accuracy of every arch of a space."""
    from autogo_deploy.cli.outputs import check_outputs, write_text
    from autogo_deploy.predictor.tasks import accuracy_space, check_space, csv_text

    check_space(space)
    check_outputs([], files=[("--out", output)])
    archs, acc = accuracy_space(_predictor(checkpoint), space, log=_log)
    write_text(output, csv_text(("arch_str", "predicted_cifar10_acc"), zip(archs, acc, strict=True)))
    if json_out:
        print_json({"out": str(output), "rows": len(archs), "source": "predicted"})
    else:
        out.print(f"wrote {len(archs)} predicted accuracies to {output}")


def register(app: typer.Typer) -> None:
    app.add_typer(predictor_app, name="predictor")
