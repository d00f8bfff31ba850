"""The typer application. Each command lives in its own module and registers itself here.

Command modules must stay light at import time (no onnxruntime/torch/tvm/highspy at module level)
so that `autogo-deploy --help` is fast.
"""

from __future__ import annotations

import sys

import typer

app = typer.Typer(
    name="autogo-deploy",
    help="Measure, profile and evolve ONNX models for real hardware targets (AutoGO).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from autogo_deploy import __version__

        print(__version__)
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", help="print the version and exit", is_eager=True, callback=_print_version
    ),
) -> None:
    """Measure, profile and evolve ONNX models for real hardware targets (AutoGO)."""


def _register() -> None:
    # One line per command module; each exposes `register(app)`.
    from autogo_deploy.cli import (
        check_cmd,
        db_cmd,
        inspect_cmd,
        optimize_cmd,
        predictor_cmd,
        profile_cmd,
        targets_cmd,
        zoo_cmd,
    )

    for module in (
        inspect_cmd,
        optimize_cmd,
        profile_cmd,
        check_cmd,
        targets_cmd,
        zoo_cmd,
        db_cmd,
        predictor_cmd,
    ):
        module.register(app)


_register()


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: user errors become one line on stderr and an exit code.

    Usage errors (unknown option, missing argument) are reported by click with exit code 2.
    """
    from autogo_deploy.errors import AutogoError

    try:
        app(args=argv, standalone_mode=True)
    except AutogoError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
