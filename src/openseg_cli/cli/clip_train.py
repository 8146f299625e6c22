"""`openseg clip-train SHARDS --out DIR --model NAME [-- open_clip_train flags]`: your own CLIP from your
captions, trained by open_clip_train, written as DIR/NAME.safetensors for `model.clip.pretrained`."""

from __future__ import annotations

from pathlib import Path

import typer

from openseg_cli.cli.console import console, progress_bar


def clip_train(
    shards: Path = typer.Argument(
        ..., help="Captioned openseg shards (`openseg prepare …`) or an `openseg export clip-data` folder."
    ),
    extra: list[str] | None = typer.Argument(
        None,
        help="open_clip_train flags after --, passed through: -- --pretrained FILE --lock-image "
        "--grad-clip-norm 1.0 …",
        show_default=False,
    ),
    out: Path = typer.Option(
        ..., "--out", help="Run folder: rerun the same command to resume; a finished run is not retrained."
    ),
    model: str = typer.Option(
        ...,
        "--model",
        help="open_clip model: openseg-tiny-vit, openseg-tiny-rn, ViT-B-32 … or your config's.",
    ),
    config_file: Path | None = typer.Option(
        None, "--config-file", help="Your open_clip model config (JSON; the file stem is its model name)."
    ),
    epochs: int = typer.Option(32, "--epochs", help="Passes over the data."),
    batch_size: int = typer.Option(64, "--batch-size", help="Images (and captions) per step."),
    lr: float = typer.Option(5e-4, "--lr", help="Peak learning rate (AdamW, cosine schedule)."),
    wd: float = typer.Option(0.2, "--wd", help="Weight decay."),
    warmup: int | None = typer.Option(
        None, "--warmup", help="Warm-up steps (default: 10% of all steps, at most 10000)."
    ),
    workers: int | None = typer.Option(
        None,
        "--workers",
        help="Data-loader workers, at most the shard count (default: min(4, shards, cores)).",
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    precision: str | None = typer.Option(
        None,
        "--precision",
        help="fp32 | amp | bf16 | amp_bf16 | fp16 … (default: amp on CUDA, fp32 on CPU, where amp is fp16 "
        "autocast and ~10x slower).",
    ),
    device: str = typer.Option(
        "auto", "--device", help="auto | cpu | cuda | cuda:N (auto: CUDA if present)."
    ),
    captions: str = typer.Option(
        "each", "--captions", help="Exporting SHARDS: each (one sample per caption) or one (first caption)."
    ),
    maxcount: int | None = typer.Option(
        None,
        "--maxcount",
        min=1,
        help="Exporting SHARDS: samples per clip tar (more tars allow more workers).",
    ),
) -> None:
    """Train a CLIP with open_clip_train (its own main) on your captions; writes OUT/MODEL.safetensors
    (weights only, like a downloaded open_clip file) and OUT/clip_train.json. One process, CPU or one GPU;
    for several GPUs run open_clip_train under torchrun on `openseg export clip-data` output."""
    from openseg_cli.engine.clip_train import ClipTrainRequest, run_clip_training

    req = ClipTrainRequest(
        shards=str(shards), out_dir=str(out), model=model,
        config_file=str(config_file) if config_file else None,
        epochs=epochs, batch_size=batch_size, lr=lr, wd=wd, warmup=warmup, workers=workers, seed=seed,
        precision=precision, device=device, captions=captions, maxcount=maxcount, extra=tuple(extra or ()),
    )  # fmt: skip
    console.print(f"[bold]clip-train[/] {model} → {out}")
    result = run_clip_training(req, bar=progress_bar)
    state = result.state
    if result.already_trained:
        console.print(f"already trained ({out / 'clip_train.json'}): {result.weights}", markup=False)
    else:
        loss = state.get("loss") or {}
        plan, data = state["plan"], state["data"]
        console.print(
            f"done: {epochs} epoch(s) × {plan['samples_per_epoch']} samples ({data['samples']} captions of "
            f"{data['images']} images) on {plan['device']} ({plan['precision']}), last logged loss "
            f"{loss.get('last', 'n/a')}, {state['wall_s']:.0f} s → {result.weights}",
            markup=False,
            highlight=False,
        )
    config = f" --set model.clip.config_file={config_file}" if config_file else ""
    console.print(
        f"use it: openseg train RECIPE --set model.clip.name={model} "
        f"--set model.clip.pretrained={result.weights}{config}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    app.command("clip-train")(clip_train)
