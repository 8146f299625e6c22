"""`openseg pseudo-label SHARDS --teacher CKPT`: write new shards with a teacher's masks."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from openseg_cli.cli.console import console, progress_bar


def pseudo_label(
    shards: str = typer.Argument(..., help="Input shards (images + captions; masks not needed)."),
    teacher: Path = typer.Option(..., "--teacher", help="Teacher checkpoint (recipes/teacher.yaml)."),
    out: Path | None = typer.Option(
        None, "--out", help="Output shard folder (default: runs/pseudo-label/<name>[N])."
    ),
    name: str = typer.Option("pseudo", "--name"),
    min_confidence: float = typer.Option(
        0.5, "--min-confidence", min=0.0, max=1.0, help="Mean mask probability kept."
    ),
    min_area: float = typer.Option(
        0.001, "--min-area", min=0.0, max=1.0, help="Smallest mask, fraction of the image."
    ),
    max_masks: int = typer.Option(128, "--max-masks", min=1, help="Most masks per image."),
    size: int | None = typer.Option(
        None, "--size", min=32, help="Teacher input size (default: its recipe's crop)."
    ),
    accelerator: str = typer.Option("cpu", "--accelerator", help="cpu | gpu | auto (Lightning's)."),
    devices: str = typer.Option(
        "1", "--devices", help="Devices per node; input shards are split over all ranks."
    ),
    num_nodes: int = typer.Option(1, "--num-nodes", min=1, help="Nodes (torchrun / SLURM)."),
    workers: int = typer.Option(
        0, "--workers", min=0, help="Image-decoding workers per rank (0: in the rank's process)."
    ),
    strict: bool = typer.Option(
        False, "--strict", help="Stop at the first corrupt shard or image instead of skipping it."
    ),
    maxcount: int | None = typer.Option(
        None, "--maxcount", min=1, help="Samples per output shard (at most)."
    ),
) -> None:
    """Class-agnostic, non-overlapping masks per image; images, captions and words are carried over.

    Each rank writes its own shards; the output folder lists them all (one manifest.json, sizes.json).
    Rerun with the same --out and settings to resume: images in finished shards are not labelled again.
    """
    from contextlib import nullcontext

    from openseg_cli.cli.train import is_first_rank, shared_run_dir
    from openseg_cli.data.shards import count_samples, list_shards
    from openseg_cli.engine.pseudo_label import PseudoLabelRequest, run_pseudo_labelling
    from openseg_cli.inference.pseudo import PseudoLabelThresholds

    total = sum(count_samples(url) for url in list_shards(shards))
    thresholds = PseudoLabelThresholds(min_confidence, min_area, max_masks)
    out_dir = shared_run_dir(out, "pseudo-label", name)
    req = PseudoLabelRequest(
        teacher, shards, thresholds, size, accelerator=accelerator,
        devices=int(devices) if devices.isdigit() else devices, num_nodes=num_nodes,
        strategy="ddp" if devices not in ("1", "auto") or num_nodes > 1 else "auto",
        workers=workers, strict=strict, command=sys.argv, maxcount=maxcount,
    )  # fmt: skip
    first = is_first_rank()  # other ranks (started by ddp, torchrun or srun) stay quiet
    with progress_bar("pseudo-label", total) if first else nullcontext(None) as advance:
        manifest = run_pseudo_labelling(req, out_dir, progress=advance)
    if not first:
        return
    counts = manifest["counts"]
    console.print(f"{counts['written']} images pseudo-labelled → {out_dir}")
    for reason, n in sorted(counts.get("skipped", {}).items()):
        console.print(f"  [yellow]skipped[/] {n} × {reason}")


def register(app: typer.Typer) -> None:
    app.command("pseudo-label")(pseudo_label)
