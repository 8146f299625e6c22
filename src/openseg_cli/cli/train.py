"""`openseg train RECIPE.yaml`: train an OpenSeg model as a recipe describes."""

from __future__ import annotations

from pathlib import Path

import typer

from openseg_cli.cli.console import console


def train(
    recipe: Path = typer.Argument(
        ..., help="Recipe YAML (see recipes/: toy, coco, coco_narratives, teacher)."
    ),
    overrides: list[str] = typer.Option(
        [], "--set", "-s", help="Override a recipe field, e.g. --set optim.lr=0.01 (repeatable)."
    ),
    name: str | None = typer.Option(None, "--name", help="Run name (default: the recipe's name)."),
    out: Path | None = typer.Option(None, "--out", help="Run folder (default: runs/train/<name>[N])."),
    resume: Path | None = typer.Option(None, "--resume", help="Continue from a training checkpoint (.ckpt)."),
    devices: str | None = typer.Option(None, "--devices", help="= trainer.devices (a number or 'auto')."),
    num_nodes: int | None = typer.Option(None, "--num-nodes", help="= trainer.num_nodes."),
    max_steps: int | None = typer.Option(None, "--max-steps", help="= trainer.max_steps."),
) -> None:
    """Train on shards (losses 4·segmentation + 1·grounding by default); writes checkpoints and model.pt."""
    from openseg_cli.config import load_recipe
    from openseg_cli.runs import check_run_name, output_dir

    flags = {"trainer.devices": devices, "trainer.num_nodes": num_nodes, "trainer.max_steps": max_steps}
    overrides = list(overrides) + [f"{k}={v}" for k, v in flags.items() if v is not None]
    cfg = load_recipe(recipe, overrides)
    if out is None:
        check_run_name(name or cfg.name)
    from openseg_cli.engine.train import check_training_inputs, run_training, world_size_of

    world_size = world_size_of(cfg)
    check_training_inputs(cfg, world_size)  # before a run folder exists: a failed start leaves none
    if resume is not None and out is None:
        out = _run_dir_of_checkpoint(resume)
    run_dir = output_dir(out, "train", name or cfg.name)
    console.print(f"[bold]train[/] {cfg.name} → {run_dir}")
    result = run_training(cfg, run_dir, resume=str(resume) if resume else None, world_size=world_size)
    miou = "n/a" if result.val_miou is None else f"{result.val_miou:.4f}"
    console.print(f"done: {result.global_step} steps, held-out val mIoU {miou}, model → {result.model_path}")


def _run_dir_of_checkpoint(path: Path) -> Path | None:
    """`runs/train/x/checkpoints/last.ckpt` → `runs/train/x` (resume writes into the same run folder)."""
    return path.parent.parent if path.parent.name == "checkpoints" else None


def register(app: typer.Typer) -> None:
    app.command("train")(train)
