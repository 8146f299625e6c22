"""`openseg clip-train`: train a CLIP on captioned shards with open_clip_train itself, then write its weights
as `OUT/<model>.safetensors`, the file `model.clip.pretrained` (and `predict --clip NAME:FILE`) loads.

The run folder `OUT/`:
- `data/`: `openseg export clip-data` output (not when SHARDS already is such a folder);
- `open_clip_train/`: open_clip_train's own `--logs OUT --name open_clip_train` folder: `out.log`,
  `params.txt`, `checkpoints/epoch_latest.pt` (model + optimizer, saved atomically after every epoch:
  `--save-most-recent`) and `checkpoints/epoch_<E>.pt` (the last epoch); `console.log` holds what the
  trainer printed (warnings, tracebacks);
- `<model>.safetensors`: the model's state_dict alone (no optimizer, no `module.` prefix), as open_clip's
  downloaded weights files are;
- `clip_train.json`: the request, the open_clip_train command line, data counts, the final loss, status.

Rerunning the same command resumes (`--resume latest` from `epoch_latest.pt`); a finished run is not
trained again; a folder holding a run with other settings is refused. open_clip_train runs in a child
process (`python -m openseg_cli.engine.open_clip_main`): its logging setup, global seeds and `exit()`
calls stay out of this process, and its output is read for the progress bar and the error line.
"""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext, redirect_stderr
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from openseg_cli.atomic import atomic_write_json
from openseg_cli.data.clip_export import (
    CAPTION_MODES,
    CaptionMode,
    count_input_samples,
    export_clip_data,
    read_clip_data,
    train_data_pattern,
)
from openseg_cli.engine.clip_train_run import (
    LATEST,
    OPEN_CLIP_MAIN,
    RUN_NAME,
    final_loss,
    run_open_clip_train,
    samples_per_epoch,
    write_weights,
)
from openseg_cli.errors import InputFileError, UsageError

STATE = "clip_train.json"
# Flags clip-train sets itself: after `--` they would break the data, the run folder or resuming.
_OWN_FLAGS = {
    "train_data": "SHARDS",
    "train_num_samples": "SHARDS",
    "dataset_type": "SHARDS",
    "logs": "--out",
    "name": "--out",
    "resume": "rerunning the command",
    "save_most_recent": "clip-train",
    "save_frequency": "clip-train",
    "model": "--model",
    "epochs": "--epochs",
    "batch_size": "--batch-size",
    "lr": "--lr",
    "wd": "--wd",
    "warmup": "--warmup",
    "workers": "--workers",
    "seed": "--seed",
    "precision": "--precision",
    "device": "--device",
}

Bar = Callable[[str, int | None], AbstractContextManager[Callable[[int], None] | None]]


def no_bar(description: str, total: int | None) -> AbstractContextManager[None]:
    return nullcontext(None)


@dataclass(frozen=True)
class ClipTrainRequest:
    """What `openseg clip-train` was asked; None = chosen from the data and the machine (see `_plan`)."""

    shards: str
    out_dir: str
    model: str
    config_file: str | None = None
    epochs: int = 32
    batch_size: int = 64
    lr: float = 5e-4
    wd: float = 0.2
    warmup: int | None = None  # steps; default 10 % of all steps, at most open_clip_train's 10000
    workers: int | None = None  # default min(4, shards, cores)
    seed: int = 0
    precision: str | None = None  # default amp on cuda, fp32 on cpu
    device: str = "auto"
    captions: CaptionMode = "each"
    maxcount: int | None = None
    extra: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class ClipTrainResult:
    weights: Path
    state: dict[str, Any]
    already_trained: bool


def check_request(req: ClipTrainRequest) -> None:
    """Fail fast, before anything is written: bad numbers, device or precision, missing input shards, an
    unknown model (with close matches), flags after `--` that open_clip_train rejects or that clip-train
    sets itself, or a missing pandas (open_clip_train imports it). Raises UsageError, InputFileError or
    RecipeError."""
    from openseg_cli.data.shards import list_shards
    from openseg_cli.engine.open_clip_main import missing_requirement
    from openseg_cli.engine.predict import resolve_device
    from openseg_cli.models.clip import check_model_name, register_clip_configs

    for name in ("epochs", "batch_size"):
        if getattr(req, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
    if req.lr <= 0 or req.wd < 0 or (req.warmup or 0) < 0 or (req.workers or 0) < 0:
        raise UsageError("--lr must be positive; --wd, --warmup and --workers must not be negative")
    if req.captions not in CAPTION_MODES:
        raise UsageError(f"--captions {req.captions!r}: use {' or '.join(CAPTION_MODES)}")
    if req.device != "auto":
        resolve_device(req.device)
    list_shards(req.shards)
    problem = missing_requirement()
    if problem:
        raise UsageError(problem)
    register_clip_configs(req.config_file)
    check_model_name(req.model, "--model")
    _check_flags(req)


def _check_flags(req: ClipTrainRequest) -> None:
    """open_clip_train's own parser on --precision and the flags after `--`: its error as a UsageError;
    and none of _OWN_FLAGS after `--` (argparse's abbreviations included)."""
    from open_clip_train.params import parse_args

    base = ["--model", req.model] + (["--precision", req.precision] if req.precision else [])
    errors = io.StringIO()
    try:
        with redirect_stderr(errors):
            plain, given = parse_args(base), parse_args(base + list(req.extra))
    except SystemExit:
        last = (errors.getvalue().strip().splitlines() or ["bad arguments"])[-1]
        raise UsageError(f"open_clip_train: {last.split('error: ', 1)[-1]}") from None
    for dest, use in _OWN_FLAGS.items():
        if getattr(plain, dest) != getattr(given, dest):
            flag = "--" + dest.replace("_", "-")
            raise UsageError(f"{flag} after --: clip-train sets it itself; use {use}")


def _settings(req: ClipTrainRequest) -> dict[str, Any]:
    """The request as recorded in clip_train.json: a rerun with other settings is refused."""
    settings = asdict(req)
    settings.pop("out_dir")
    settings["shards"] = os.path.abspath(req.shards)
    settings["config_file"] = os.path.abspath(req.config_file) if req.config_file else None
    settings["extra"] = list(req.extra)
    return settings


_DATA_SETTINGS = ("shards", "captions", "maxcount")


def _previous_state(out_dir: Path, settings: dict[str, Any]) -> tuple[dict[str, Any] | None, bool]:
    """(clip_train.json of an earlier run in `out_dir` or None, whether its data must be exported anew).

    Settings may change only while nothing is trained (no `epoch_latest.pt`: an attempt that failed to
    start); a run with a checkpoint and other settings is refused with a UsageError naming the changes.
    """
    path = out_dir / STATE
    if not path.is_file():
        return None, False
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exn:
        raise InputFileError(f"{path}: unreadable ({exn}); delete it or choose another --out") from None
    old = state.get("request", {})
    changed = [k for k in settings if old.get(k) != settings[k]]
    if changed and (out_dir / RUN_NAME / "checkpoints" / LATEST).exists():
        diff = ", ".join(f"{k} {old.get(k)!r} → {settings[k]!r}" for k in changed)
        raise UsageError(
            f"--out {out_dir} holds a clip-train run with other settings ({diff}); use another --out"
        )
    return state, any(k in changed for k in _DATA_SETTINGS)


def _training_data(req: ClipTrainRequest, out_dir: Path, bar: Bar, anew: bool) -> tuple[Path, dict]:
    """(folder, clip_data record): SHARDS itself when it is a clip-data folder, else OUT/data exported
    (resumed or up to date; replaced when `anew`)."""
    record = read_clip_data(req.shards) if Path(req.shards).is_dir() else None
    if record is not None:
        return Path(req.shards), record
    folder = out_dir / "data"
    with bar("clip-data", count_input_samples(req.shards)) as advance:
        record = export_clip_data(
            req.shards, folder, captions=req.captions, maxcount=req.maxcount, overwrite=anew,
            progress=advance,
        )  # fmt: skip
    return folder, record


@dataclass(frozen=True)
class _Plan:
    """What `_plan` resolved for a run (recorded in clip_train.json)."""

    device: str
    precision: str
    workers: int
    warmup: int
    steps_per_epoch: int
    samples_per_epoch: int


def default_workers(num_shards: int) -> int:
    """Data-loader workers when --workers is not given: min(4, shards, cores)."""
    from openseg_cli.engine.cpu import available_cores

    return min(4, num_shards, available_cores())


def fewest_per_worker(shards: dict[str, int], workers: int) -> int:
    """The fewest samples one of `workers` data-loader workers can get: open_clip_train shuffles the
    shards each epoch and gives worker w every `workers`-th one, so the smallest share is the sum of the
    smallest len(shards) // workers shard counts."""
    counts = sorted(shards.values())
    return sum(counts[: len(counts) // max(1, workers)])


def _plan(req: ClipTrainRequest, shards: dict[str, int]) -> _Plan:
    """Device, precision, workers and warmup resolved, and the epoch size open_clip_train will use.

    Raises InputFileError for fewer shards than workers (open_clip_train asserts it) and UsageError when
    a data-loader worker could get fewer samples than one batch: open_clip_train would then train on
    nothing, silently (its loader drops partial batches and ends an epoch that yields none).
    """
    import torch

    from openseg_cli.data.loader import check_parallelism

    device = req.device if req.device != "auto" else "cuda" if torch.cuda.is_available() else "cpu"
    precision = req.precision or ("fp32" if device == "cpu" else "amp")
    workers = req.workers if req.workers is not None else default_workers(len(shards))
    check_parallelism(len(shards), workers, 1, "SHARDS", workers_name="--workers")
    fewest = fewest_per_worker(shards, workers)
    if fewest < req.batch_size:
        raise UsageError(
            f"--batch-size {req.batch_size} is more than the {fewest} samples a data-loader worker may get "
            f"({sum(shards.values())} samples in {len(shards)} shards, {max(1, workers)} workers): lower "
            "--batch-size or --workers"
        )
    steps, samples = samples_per_epoch(sum(shards.values()), req.batch_size, workers)
    warmup = req.warmup if req.warmup is not None else min(10_000, max(1, steps * req.epochs // 10))
    return _Plan(device, precision, workers, warmup, steps, samples)


def training_args(req: ClipTrainRequest, train_data: str, num_samples: int, plan: _Plan) -> list[str]:
    """open_clip_train's flags for the data, the model, the optimisation and the device."""
    return [
        *(["--config-file", os.path.abspath(req.config_file)] if req.config_file else []),
        "--dataset-type", "webdataset",
        "--train-data", train_data,
        "--train-num-samples", str(num_samples),
        "--model", req.model,
        "--epochs", str(req.epochs),
        "--batch-size", str(req.batch_size),
        "--lr", str(req.lr),
        "--wd", str(req.wd),
        "--warmup", str(plan.warmup),
        "--workers", str(plan.workers),
        "--seed", str(req.seed),
        "--precision", plan.precision,
        "--device", plan.device,
    ]  # fmt: skip


def open_clip_args(req: ClipTrainRequest, data_dir: Path, record: dict[str, Any], plan: _Plan) -> list[str]:
    """The whole command line of a clip-train run (after `python -m openseg_cli.engine.open_clip_main`):
    `training_args`, then the run folder and resuming, then the user's flags after `--`."""
    train_data = train_data_pattern(data_dir.resolve(), record)
    return [
        *training_args(req, train_data, record["counts"]["samples"], plan),
        "--logs", str(Path(req.out_dir).resolve()),
        "--name", RUN_NAME,
        "--resume", "latest",
        "--save-most-recent",  # epoch_latest.pt, written to tmp.pt then os.replace'd: what resume reads
        "--save-frequency", "0",  # no epoch_N.pt but the last one
        "--log-every-n-steps", str(max(1, min(100, plan.steps_per_epoch // 20))),
        *req.extra,
    ]  # fmt: skip


def suggested_command(data_dir: Path, record: dict[str, Any], model: str = "openseg-tiny-vit") -> str:
    """A runnable open_clip_train command line for an export (what `export clip-data` prints): this
    machine's device, open_clip_train's defaults otherwise, the batch size lowered to fit small data."""
    import shlex

    workers = default_workers(len(record["shards"]))
    batch_size = min(64, fewest_per_worker(record["shards"], workers))
    req = ClipTrainRequest(str(data_dir), ".", model, batch_size=batch_size, workers=workers)
    plan = _plan(req, record["shards"])
    args = training_args(req, train_data_pattern(data_dir, record), record["counts"]["samples"], plan)
    return shlex.join(["python", "-m", OPEN_CLIP_MAIN, *args])


def run_clip_training(req: ClipTrainRequest, bar: Bar = no_bar) -> ClipTrainResult:
    """Check, export the data (unless SHARDS is clip data), train with open_clip_train (resuming), write
    `<model>.safetensors` and `clip_train.json`. `bar(description, total)` gives each phase's progress
    callback. Raises the errors of `check_request`, `export_clip_data`, `_plan`, and OpenSegError with
    open_clip_train's last error line when it fails."""
    check_request(req)
    out_dir = Path(req.out_dir)
    settings = _settings(req)
    state, anew = _previous_state(out_dir, settings)
    weights = out_dir / f"{req.model.replace('/', '-').replace(':', '-')}.safetensors"
    if state and state.get("status") == "finished" and weights.is_file():
        return ClipTrainResult(weights, state, already_trained=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    data_dir, record = _training_data(req, out_dir, bar, anew)
    plan = _plan(req, record["shards"])
    args = open_clip_args(req, data_dir, record, plan)
    state = _state(req, settings, data_dir, record, plan, args, weights)
    atomic_write_json(out_dir / STATE, state)
    with bar(f"clip-train {req.model}", req.epochs * plan.samples_per_epoch) as advance:
        run = run_open_clip_train(args, out_dir, plan.device, plan.workers, advance)
    write_weights(run, req.epochs, weights)
    state = {**state, "status": "finished", "loss": final_loss(run.log), "wall_s": run.wall_s}
    atomic_write_json(out_dir / STATE, state)
    return ClipTrainResult(weights, state, already_trained=False)


def _state(req, settings, data_dir: Path, record, plan: _Plan, args: list[str], weights: Path) -> dict:
    """clip_train.json while training ("running"); the finished run adds its loss and wall time."""
    import open_clip

    return {
        "status": "running",
        "request": settings,
        "model": req.model,
        "config": open_clip.get_model_config(req.model),
        "data": {
            "folder": str(data_dir),
            "train_data": train_data_pattern(data_dir, record),
            "samples": record["counts"]["samples"],
            "images": record["counts"]["images"],
            "images_without_caption": record["counts"]["images_without_caption"],
            "captions": record["params"]["captions"],
        },
        "plan": asdict(plan),
        "command": [sys.executable, "-m", OPEN_CLIP_MAIN, *args],
        "weights": weights.name,
    }
