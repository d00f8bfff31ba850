"""The typer application. Each command lives in its own module and registers itself here.

Command modules must stay light at import time (no onnxruntime/torch/tvm/highspy at module level)
so that `autogo-deploy --help` is fast.
"""

from __future__ import annotations

import os
import sys
import traceback

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
    """Console-script entry point: every failure becomes one `error: ...` line on stderr and an exit
    code: a user's error its own (2 bad input or usage, 3 environment), anything unexpected 4
    (internal; the traceback with AUTOGO_DEBUG=1), never Python's 1, which `check` uses for "budget
    broken"."""
    from autogo_deploy.errors import EXIT_INPUT, EXIT_INTERNAL, AutogoError

    try:
        result = app(args=argv, prog_name="autogo-deploy", standalone_mode=False)
    except AutogoError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    except typer.TyperException as exc:  # typer's own (vendored click) usage errors
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `autogo-deploy` or `db`: the help
            print(ctx.get_help() if ctx else str(exc), file=sys.stderr)
            return EXIT_INPUT
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
        print(f"error: {' '.join(message.split())}{hint}", file=sys.stderr)
        return exc.exit_code if exc.exit_code not in (0, 1) else EXIT_INPUT
    except (KeyboardInterrupt, typer.Abort):
        print("interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else EXIT_INPUT)
    except Exception as exc:  # a bug of ours: one line and exit 4
        if os.environ.get("AUTOGO_DEBUG"):
            traceback.print_exc()
        what = " ".join(str(exc).split())[:300] or "(no message)"
        print(
            f"error: internal error: {type(exc).__name__}: {what} (a bug: please report it; "
            "AUTOGO_DEBUG=1 prints the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
