"""Files a command will write, checked before it starts its work, and written with one error line.

`check_outputs` runs first in every command that writes: an output must not be one of the command's
own inputs (`optimize m.onnx -o m.onnx` would replace a trained model by a mutant with fresh weights;
`fewshot --measurements r.csv --out r.csv` the measurements by predictions), a file output must not
be an existing folder, a folder output not an existing file, and the folder a file goes into must be
a folder (created when missing, as before) that this process may write. `write_text` turns a write
that fails anyway (disk full, permissions changed meanwhile) into one `error:` line (exit 2).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from autogo_deploy.errors import InputError


def _same(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _writable_parent(path: Path) -> Path | None:
    """The nearest existing ancestor folder of `path` when it is not writable (else None)."""
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"cannot write {path}: {parent} is not a folder")
    return None if os.access(parent, os.W_OK | os.X_OK) else parent


def check_outputs(
    inputs: Iterable[Path | str | None],
    files: Iterable[tuple[str, Path | None]] = (),
    folders: Iterable[tuple[str, Path | None]] = (),
) -> None:
    """InputError (before any work is done) when an output would overwrite an input or cannot be
    written. `inputs`: paths the command reads (None and `zoo:` names are skipped); `files` and
    `folders`: (option name, path or None)."""
    ins = [Path(p) for p in inputs if p is not None and not str(p).startswith("zoo:")]
    outs = [(opt, Path(p), False) for opt, p in files if p is not None]
    outs += [(opt, Path(p), True) for opt, p in folders if p is not None]
    for opt, path, folder in outs:
        for src in ins:
            if _same(path, src) or path.absolute() == src.absolute():
                raise InputError(f"{opt} {path} is an input of this command: refusing to overwrite it")
        if folder and path.exists() and not path.is_dir():
            raise InputError(f"{opt} {path} is a file, not a folder")
        if not folder and path.is_dir():
            raise InputError(f"{opt} {path} is a folder; give a file name")
        locked = _writable_parent(path / "x" if folder else path)
        if locked is not None:
            raise InputError(f"cannot write {opt} {path}: {locked} is not writable")
    seen: dict[Path, str] = {}
    for opt, path, _ in outs:
        key = path.absolute()
        if key in seen:
            raise InputError(f"{seen[key]} and {opt} name the same path {path}")
        seen[key] = opt


def write_text(path: Path, text: str, *, append: bool = False) -> None:
    """Write (or append) UTF-8 text, creating missing folders; OSError → one InputError line."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a" if append else "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
