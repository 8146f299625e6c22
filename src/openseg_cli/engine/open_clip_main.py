"""`python -m openseg_cli.engine.open_clip_main [--config-file FILE] ARGS…`: open_clip_train's own
`main(ARGS)`, with openseg's packaged model configs registered (`openseg-tiny-vit`, `openseg-tiny-rn`, and
FILE's stem when given) and one compatibility fix. `openseg clip-train` runs it; so can you, with any
open_clip_train flag, on `openseg export clip-data` output.

The fix: open_clip_train 3.3.0 reads WebDataset tars with its own `tarfile_to_samples_nothrow`, written
before webdataset (0.2.96+) began to yield an empty dict after each tar as an end-of-shard marker; it fails
on that marker with `KeyError: 'fname'` at the end of the first shard (open_clip#935, webdataset#384).
open_clip_train pins webdataset<=0.2.86 in its requirements-training.txt; openseg needs 1.0.2. The reader is
replaced by the same three calls with `eof_value=None` (webdataset's own switch for the marker).
"""

from __future__ import annotations

import importlib.util
import logging
import sys


def split_config_file(argv: list[str]) -> tuple[str | None, list[str]]:
    """(`--config-file` value or None, the other arguments): the one flag this wrapper adds."""
    rest, config_file, args = [], None, iter(argv)
    for arg in args:
        if arg == "--config-file":
            config_file = next(args, None)
        elif arg.startswith("--config-file="):
            config_file = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    return config_file, rest


def missing_requirement() -> str | None:
    """Why open_clip_train cannot be imported here, or None: its data module imports pandas at the top
    (for CSV input, which openseg does not use) and pandas is not an openseg dependency."""
    if importlib.util.find_spec("pandas") is None:
        return "open_clip_train imports pandas at start-up: pip install 'openseg-cli[clip]' (or pandas)"
    return None


def fix_webdataset_eof() -> None:
    """Make open_clip_train's tar reader skip webdataset's end-of-shard marker (see the module doc)."""
    import open_clip_train.data as data
    from webdataset.tariterators import tar_file_expander, url_opener

    def tarfile_to_samples_nothrow(src, handler=data.log_and_continue):
        streams = url_opener(src, handler=handler)
        files = tar_file_expander(streams, handler=handler, eof_value=None)
        return data.group_by_keys_nothrow(files, handler=handler)

    data.tarfile_to_samples_nothrow = tarfile_to_samples_nothrow


def main(argv: list[str]) -> int:
    """Run open_clip_train on `argv`; the exit status: 0, 1 when open_clip_train reports an error and
    returns (its exceptions propagate as tracebacks, as with `python -m open_clip_train.main`), or an
    openseg error's code (pandas missing, `--config-file` not found) after one `error:` line."""
    config_file, args = split_config_file(argv)
    problem = missing_requirement()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    from openseg_cli.errors import OpenSegError
    from openseg_cli.models.clip import register_clip_configs

    try:
        register_clip_configs(config_file)
    except OpenSegError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    fix_webdataset_eof()
    import open_clip_train.main

    status = open_clip_train.main.main(args)
    # open_clip_train set every logger to INFO; keep torch's exit-time INFO reports off the console
    logging.disable(logging.INFO)
    return 0 if status is None else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
