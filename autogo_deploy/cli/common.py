"""Shared CLI pieces: option parsing helpers and the rich consoles (results → stdout, logs → stderr)."""

from __future__ import annotations

import json
import sys

from rich.console import Console

# file=None: rich looks up sys.stdout / sys.stderr at write time (works under capture and redirection)
out = Console(highlight=False, soft_wrap=False)
err = Console(stderr=True, highlight=False)


def parse_input_shapes(values: list[str] | None) -> dict[str, tuple[int, ...]] | None:
    """`--input-shape NAME=1x3x224x224` (repeatable) → {NAME: (1, 3, 224, 224)}."""
    if not values:
        return None
    from autogo_deploy.onnx_ingest import parse_shape_arg

    return dict(parse_shape_arg(v) for v in values)


def print_json(doc: object) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=False) + "\n")


def human(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:g}"
