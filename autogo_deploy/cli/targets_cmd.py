"""`autogo-deploy targets [--json]`: every packaged target with its availability and the reason."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from autogo_deploy.cli.common import out, print_json


def target_rows() -> list[dict[str, Any]]:
    """One row per packaged target file; invalid files are listed with what is wrong."""
    from autogo_deploy.errors import InputError
    from autogo_deploy.paths import targets_dir
    from autogo_deploy.target import load_target, target_names

    rows = []
    for name in target_names():
        try:
            target = load_target(name)
        except InputError as exc:
            rows.append(
                {
                    "name": name,
                    "backend": None,
                    "device": None,
                    "description": "",
                    "available": False,
                    "reason": exc.one_line(),
                    "path": str(targets_dir() / f"{name}.toml"),
                    "power_method": None,
                    "power_fallback": None,
                    "budgets": {},
                }
            )
            continue
        ok, reason = target.available()
        rows.append(
            {
                "name": target.name,
                "backend": target.backend,
                "device": target.device,
                "description": target.description,
                "available": ok,
                "reason": reason,
                "path": target.path,
                "power_method": target.power.get("method"),
                "power_fallback": target.power.get("fallback"),
                "budgets": target.budgets,
            }
        )
    return rows


def targets(
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON document")] = False,
) -> None:
    """List every target with its availability (and why not, when unavailable)."""
    rows = target_rows()
    if json_out:
        print_json({"schema_version": 1, "targets": rows})
        return
    from rich.table import Table

    table = Table(title="targets")
    for col in ("target", "backend", "device", "available", "power", "reason / runtime"):
        table.add_column(col)
    for row in rows:
        status = "[green]yes[/green]" if row["available"] else "[red]no[/red]"
        power = row["power_method"] or "-"
        if row["power_fallback"]:
            power += f" (else {row['power_fallback']})"
        table.add_row(row["name"], row["backend"] or "?", row["device"] or "?", status, power, row["reason"])
    out.print(table)


def register(app: typer.Typer) -> None:
    app.command("targets")(targets)
