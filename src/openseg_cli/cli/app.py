"""The `openseg` typer app: global options, error handling, and one sub-command per module.

Every module under `cli/` stays thin and imports heavy libraries (torch, lightning, open_clip, stanza)
inside its command function, so `openseg --help` and `--version` stay instant.
"""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from openseg_cli import __version__
from openseg_cli.cli import (
    clip_train,
    evaluate,
    export,
    extract_nouns,
    predict,
    prepare,
    pseudo_label,
    toy_data,
    train,
)
from openseg_cli.cli.console import err_console
from openseg_cli.errors import OpenSegError

app = typer.Typer(
    name="openseg",
    help="OpenSeg open-vocabulary segmentation: data → shards → nouns → train → evaluate → predict.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"openseg {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks instead of one-line errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    _state["debug"] = debug


toy_data.register(app)
prepare.register(app)
extract_nouns.register(app)
train.register(app)
clip_train.register(app)
evaluate.register(app)
pseudo_label.register(app)
predict.register(app)
export.register(app)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: one clear line on stderr and a non-zero exit for every failure."""
    _state["debug"] = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        app(args=argv, standalone_mode=True)
    except OpenSegError as err:
        if _state["debug"]:
            raise
        # escaped: a message may hold brackets Rich would read as markup ("pip install 'openseg-cli[clip]'")
        err_console.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False, soft_wrap=True)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        err_console.print("[bold red]interrupted[/] (outputs written so far are complete; rerun to resume)")
        sys.exit(130)
    except Exception as err:  # noqa: BLE001 - last line of defence: no traceback without --debug
        if _state["debug"]:
            raise
        msg = str(err).splitlines()[0] if str(err) else ""
        err_console.print(
            f"[bold red]internal error:[/] {type(err).__name__}: {escape(msg)} "
            "(rerun with --debug for the traceback)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)
