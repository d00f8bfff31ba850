"""Progress on stderr (rich) for database builds: `with stderr_progress() as cb: build(..., progress=cb)`."""

from __future__ import annotations

import contextlib
import sys

_LABELS = {"tokenize": "tokenising corpus", "bpe": "learning BPE merges", "segment": "mining segments"}


@contextlib.contextmanager
def stderr_progress(title: str = "segment database"):
    """Yields a callback(stage, done, total) that drives one rich progress bar per stage."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(file=sys.stderr)
    columns = (TextColumn(f"[bold]{title}[/bold] {{task.description}}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=console, transient=False, disable=not console.is_terminal) as bar:
        tasks: dict[str, int] = {}

        def callback(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(_LABELS.get(stage, stage), total=total)
                if not console.is_terminal:
                    console.print(f"{title}: {_LABELS.get(stage, stage)} ({total})")
            bar.update(tasks[stage], completed=done, total=total)

        yield callback
