"""`openseg train RECIPE.yaml`: train an OpenSeg model as a recipe describes."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import typer

from openseg_cli.cli.console import console

RUN_DIR_ENV = "OPENSEG_RUN_DIR"


def train(
    recipe: Path = typer.Argument(
        ..., help="Recipe YAML (see recipes/: toy, coco, coco_narratives, teacher)."
    ),
    overrides: list[str] = typer.Option(
        [], "--set", "-s", help="Override a recipe field, e.g. --set optim.lr=0.01 (repeatable)."
    ),
    name: str | None = typer.Option(None, "--name", help="Run name (default: the recipe's name)."),
    out: Path | None = typer.Option(None, "--out", help="Run folder (default: runs/train/<name>[N])."),
    resume: str | None = typer.Option(
        None,
        "--resume",
        help="Continue from a training checkpoint (.ckpt), or 'last' for --out's checkpoints/last.ckpt.",
    ),
    devices: str | None = typer.Option(None, "--devices", help="= trainer.devices (a number or 'auto')."),
    num_nodes: int | None = typer.Option(None, "--num-nodes", help="= trainer.num_nodes."),
    accelerator: str | None = typer.Option(None, "--accelerator", help="= trainer.accelerator."),
    max_steps: int | None = typer.Option(None, "--max-steps", help="= trainer.max_steps."),
    strict: bool = typer.Option(
        False, "--strict", help="= data.strict: stop at a corrupt shard or sample instead of skipping it."
    ),
) -> None:
    """Train on shards (losses 4·segmentation + 1·grounding by default); writes checkpoints and model.pt."""
    from openseg_cli.config import load_recipe
    from openseg_cli.errors import UsageError
    from openseg_cli.runs import check_run_name

    flags = {
        "trainer.devices": devices,
        "trainer.num_nodes": num_nodes,
        "trainer.accelerator": accelerator,
        "trainer.max_steps": max_steps,
        "data.strict": "true" if strict else None,
    }
    overrides = list(overrides) + [f"{k}={v}" for k, v in flags.items() if v is not None]
    cfg = load_recipe(recipe, overrides)
    if out is None:
        check_run_name(name or cfg.name)
    from openseg_cli.engine.train import check_training_inputs, run_training, world_size_of

    world_size = world_size_of(cfg)
    check_training_inputs(cfg, world_size)  # before a run folder exists: a failed start leaves none
    checkpoint = None
    if resume == "last":
        if out is None:
            raise UsageError("--resume last needs --out RUN_FOLDER (the run to continue)")
        checkpoint = out / "checkpoints" / "last.ckpt"
        if not checkpoint.is_file():
            raise UsageError(f"--resume last: no {checkpoint} (has the run saved a checkpoint yet?)")
    elif resume is not None:
        checkpoint = Path(resume)
        if not checkpoint.is_file():
            raise UsageError(f"--resume {resume}: no such checkpoint file (or pass 'last' with --out)")
        out = out or _run_dir_of_checkpoint(checkpoint)
    run_dir = shared_run_dir(out, "train", name or cfg.name)
    if is_first_rank():
        console.print(f"[bold]train[/] {cfg.name} → {run_dir}")
    from openseg_cli.runs import run_owner

    # rank 0 owns the folder; the ranks a launcher starts write into it by design
    owner = run_owner(run_dir, "train") if is_first_rank() else contextlib.nullcontext()
    resume_from = str(checkpoint) if checkpoint else None
    with owner:
        result = run_training(cfg, run_dir, resume=resume_from, world_size=world_size)
    if not is_first_rank():
        return
    miou = "n/a" if result.val_miou is None else f"{result.val_miou:.4f}"
    console.print(f"done: {result.global_step} steps, held-out val mIoU {miou}, model → {result.model_path}")
    for reason, n in sorted(result.skipped.items()):
        console.print(f"  [yellow]skipped[/] {n} × {reason}")


def _run_dir_of_checkpoint(path: Path) -> Path | None:
    """`runs/train/x/checkpoints/last.ckpt` → `runs/train/x` (resume writes into the same run folder)."""
    return path.parent.parent if path.parent.name == "checkpoints" else None


def shared_run_dir(out: Path | None, command: str, name: str) -> Path:
    """The run folder, the same on every rank.

    With `strategy=ddp`, Lightning starts ranks 1.. by re-running this command (LOCAL_RANK set): they take
    rank 0's folder from the environment instead of making a new `name2`. Under torchrun or srun every
    rank starts at once and cannot agree on a fresh name: `--out` is then required.
    """
    from openseg_cli.errors import UsageError
    from openseg_cli.runs import output_dir

    if out is None:
        inherited = os.environ.get(RUN_DIR_ENV)
        if inherited and int(os.environ.get("LOCAL_RANK", "0") or 0) > 0:
            return Path(inherited)
        if "TORCHELASTIC_RUN_ID" in os.environ or int(os.environ.get("SLURM_NTASKS", "1") or 1) > 1:
            raise UsageError("under torchrun or srun, pass --out: every rank must write into one folder")
    run_dir = output_dir(out, command, name)
    os.environ[RUN_DIR_ENV] = str(run_dir)  # inherited by the ranks Lightning starts
    return run_dir


def is_first_rank() -> bool:
    """False in the ranks a launcher (Lightning's ddp, torchrun, srun) starts besides global rank 0:
    those stay quiet, so a run prints its summary once."""
    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return False
    return True


def register(app: typer.Typer) -> None:
    app.command("train")(train)
