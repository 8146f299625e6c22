"""The **toy** open-vocabulary table: mIoU of the seen, caption-only and unseen classes for OpenSeg on the
toy CLIP, its baselines and the method's open choices, all on the world and the CLIP `make demo` builds.

    make demo                                   # data/toy-ov, its toy CLIP, and the recipe's own run
    .venv/bin/python benchmarks/openvocab.py [--data data/toy-ov] [--runs runs/openvocab] [--seeds 2]
        [--only NAME ...] [--json PATH]

The first rows use data/clip-model, the CLIP `make demo` trains with its default CLIP_EPOCHS (3).
Every row is the real CLI (`openseg train RECIPE --set ...`, `openseg evaluate --class-groups ...`) run
one after another; a row whose metrics.json exists is read, not rerun, so an interrupted table resumes.
Rows (each training row once per seed, `trainer.seed` = 0, 1, ..., except the one-seed baselines (b),
(c) and `dense-off`; the table shows the mean and the range):

- `openseg`: recipes/toy_openvocab.yaml as it is (the paper's configuration on the toy CLIP);
- `maskclip`: (a) zero-shot dense CLIP with the toy CLIP alone (`evaluate --clip`), at the recipe's crop;
- `text-unfrozen`: (b) the same recipe with the text tower trained (recipes/toy_openvocab_text_unfrozen.yaml);
- `random-init`: (c) recipes/toy.yaml (random-init towers, closed-vocabulary tricks) on this world;
- `dense-off`: the recipe without its `clip_dense` deviation (the paper's randomly initialised region head);
- `rule-max`: the `openseg` checkpoints scored with `--rule max` instead of the recipe's sum;
- `reduction-image`, `pooling-detached`, `pooling-binary`: the recipe with one open choice changed;
- `openseg-clip10`, `maskclip-clip10`: the first two rows on a toy CLIP trained 10 epochs instead of the
  demo's 3 (`openseg clip-train` trains it here first, about 18 minutes, unless data/clip-model-10ep has it).

About 6 minutes per training run on 2 cores (17 for random-init's larger crops): the whole table (12 runs
with 2 seeds, and the longer CLIP) takes about 1.5 hours.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from _common import REPO, console, machine, write_json
from rich.table import Table

GROUPS = ("seen", "caption_only", "unseen")
DEMO_CLIP_EPOCHS = 3  # as `make demo` trains it (CLIP_EPOCHS in the Makefile)
LONG_CLIP_EPOCHS = 10
OPENSEG = REPO / ".venv" / "bin" / "openseg"


@dataclass(frozen=True)
class Row:
    name: str
    what: str
    recipe: str | None = None  # None: no training (MaskCLIP, or another row's checkpoints)
    sets: tuple[str, ...] = ()
    evaluate: tuple[str, ...] = ()  # extra evaluate flags
    checkpoints_of: str | None = None  # score this row's checkpoints instead of training
    seeded: bool = True
    one_seed: bool = False  # a baseline far from the recipe: one seed is enough to place it
    clip_epochs: int = DEMO_CLIP_EPOCHS  # the toy CLIP's training length (`make demo`'s, or a longer one)


ROWS = [
    Row("openseg", "OpenSeg, toy CLIP, frozen text tower (recipes/toy_openvocab.yaml)", "toy_openvocab.yaml"),
    Row("maskclip", "(a) zero-shot dense CLIP (MaskCLIP), toy CLIP alone", seeded=False),
    Row(
        "text-unfrozen", "(b) toy CLIP, text tower trained", "toy_openvocab_text_unfrozen.yaml", one_seed=True
    ),
    Row("random-init", "(c) recipes/toy.yaml: random-init towers", "toy.yaml", one_seed=True),
    Row(
        "dense-off",
        "model.clip_dense false (the paper's region head alone)",
        "toy_openvocab.yaml",
        ("model.clip_dense=false",),
        one_seed=True,
    ),
    Row(
        "rule-max",
        "inference.rule max (release) instead of sum",
        evaluate=("--rule", "max"),
        checkpoints_of="openseg",
    ),
    Row(
        "reduction-image",
        "loss.segmentation_reduction image",
        "toy_openvocab.yaml",
        ("loss.segmentation_reduction=image",),
    ),
    Row(
        "pooling-detached",
        "model.mask_pooling detached",
        "toy_openvocab.yaml",
        ("model.mask_pooling=detached",),
    ),
    Row("pooling-binary", "model.mask_pooling binary", "toy_openvocab.yaml", ("model.mask_pooling=binary",)),
    Row(
        "openseg-clip10",
        f"OpenSeg as the first row, on a toy CLIP trained {LONG_CLIP_EPOCHS} epochs instead of 3",
        "toy_openvocab.yaml",
        one_seed=True,
        clip_epochs=LONG_CLIP_EPOCHS,
    ),
    Row(
        "maskclip-clip10",
        f"(a) MaskCLIP on that {LONG_CLIP_EPOCHS}-epoch toy CLIP",
        seeded=False,
        clip_epochs=LONG_CLIP_EPOCHS,
    ),
]


@dataclass
class Result:
    row: Row
    runs: list[dict] = field(default_factory=list)  # metrics.json of each seed


def _openseg(*args: object) -> None:
    command = [str(OPENSEG), *map(str, args)]
    console.print("[dim]$ " + " ".join(command) + "[/dim]")
    done = subprocess.run(command, cwd=REPO, check=False)
    if done.returncode:
        sys.exit(f"failed ({done.returncode}): {' '.join(command)}")


def _clip_file(data: Path, epochs: int) -> Path:
    """The toy CLIP trained `epochs` epochs on data/shards/clip: `make demo`'s, or one that `openseg
    clip-train` trains here (into data/clip-model-<epochs>ep, resumable) with the demo's other settings."""
    if epochs == DEMO_CLIP_EPOCHS:
        return data / "clip-model" / "openseg-toy-clip.safetensors"
    folder = data / f"clip-model-{epochs}ep"
    if not (folder / "openseg-toy-clip.safetensors").is_file():
        _openseg(
            "clip-train", data / "shards" / "clip", "--out", folder, "--model", "openseg-toy-clip",
            "--epochs", epochs, "--batch-size", 64, "--lr", 0.002, "--wd", 0.1, "--warmup", 60,
            "--workers", 1,
        )  # fmt: skip
    return folder / "openseg-toy-clip.safetensors"


def _train(row: Row, data: Path, folder: Path, seed: int) -> Path:
    """Train `row` with seed `seed` into folder/train unless its model.pt exists; the data paths (and,
    for the toy-CLIP recipes, the CLIP file) point at `data`."""
    model = folder / "train" / "model.pt"
    if model.is_file():
        return model
    sets = [f"data.train_shards={data / 'shards' / 'train'}", f"data.val_shards={data / 'shards' / 'val'}"]
    if row.recipe != "toy.yaml":  # toy.yaml's towers are random-init: no CLIP file
        sets.append(f"model.clip.pretrained={_clip_file(data, row.clip_epochs)}")
    sets += [*row.sets, f"trainer.seed={seed}"]
    _openseg(
        "train",
        REPO / "recipes" / row.recipe,
        "--out",
        folder / "train",
        *[a for s in sets for a in ("--set", s)],
    )
    return model


def _evaluate(data: Path, folder: Path, source: list[str], extra: tuple[str, ...]) -> dict:
    metrics = folder / "eval" / "metrics.json"
    if not metrics.is_file():
        groups = data / "class_groups.json"
        _openseg(
            "evaluate", *source, "--shards", data / "shards" / "val", "--class-groups", groups,
            "--no-report", "--out", folder / "eval", *extra,
        )  # fmt: skip
    return json.loads(metrics.read_text())


def run_row(row: Row, data: Path, runs: Path, seeds: int, crop: int) -> Result:
    result = Result(row)
    if not row.seeded:
        clip = f"openseg-toy-clip:{_clip_file(data, row.clip_epochs)}"
        result.runs.append(
            _evaluate(data, runs / row.name, ["--clip", clip, "--size", str(crop)], row.evaluate)
        )
        return result
    for seed in range(1 if row.one_seed else seeds):
        folder = runs / f"{row.name}-seed{seed}"
        source = runs / f"{row.checkpoints_of}-seed{seed}" if row.checkpoints_of else folder
        model = source / "train" / "model.pt" if row.checkpoints_of else _train(row, data, folder, seed)
        result.runs.append(_evaluate(data, folder, [model], row.evaluate))
    return result


def _figure(doc: dict, key: str) -> float | None:
    if key == "miou":
        return doc["miou"]
    if key == "hiou":
        return doc.get("hiou")
    return doc["groups"][key]["miou"]


def summary(result: Result) -> dict[str, dict[str, float | None]]:
    """{figure: {"mean", "min", "max"}} in percent over the seeds, for miou, each group and hiou."""
    out: dict[str, dict[str, float | None]] = {}
    for key in ("miou", *GROUPS, "hiou"):
        values = [100 * v for v in (_figure(doc, key) for doc in result.runs) if v is not None]
        out[key] = {
            "mean": statistics.fmean(values) if values else None,
            "min": min(values, default=None),
            "max": max(values, default=None),
        }
    return out


def _cell(figure: dict[str, float | None]) -> str:
    if figure["mean"] is None:
        return "-"
    spread = f" ({figure['min']:.1f}–{figure['max']:.1f})" if figure["max"] != figure["min"] else ""
    return f"{figure['mean']:.1f}{spread}"


def print_table(results: list[Result], chance: float) -> None:
    table = Table(
        title=f"toy open-vocabulary world: val mIoU (%), mean over seeds (range); chance {chance:.1f}"
    )
    for col in ("row", "what", "seeds", *GROUPS, "hIoU", "all"):
        table.add_column(col, justify="left" if col in ("row", "what") else "right")
    for result in results:
        s = summary(result)
        cells = [_cell(s[k]) for k in (*GROUPS, "hiou", "miou")]
        table.add_row(result.row.name, result.row.what, str(len(result.runs)), *cells)
    console.print(table)
    console.print("markdown (README):")
    console.print("| model | seeds | seen | caption-only | unseen | hIoU | all |", markup=False)
    console.print("|---|---|---|---|---|---|---|", markup=False)
    for result in results:
        s = summary(result)
        cells = " | ".join(_cell(s[k]) for k in (*GROUPS, "hiou", "miou"))
        console.print(f"| {result.row.what} | {len(result.runs)} | {cells} |", markup=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO / "data" / "toy-ov")
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "openvocab")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--crop", type=int, default=96, help="MaskCLIP's input side (the recipe's crop)")
    parser.add_argument("--only", nargs="*", default=None, help="row names (default: all)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    for needed in (
        args.data / "class_groups.json",
        args.data / "clip-model" / "openseg-toy-clip.safetensors",
    ):
        if not needed.is_file():
            sys.exit(f"{needed} is missing: run `make demo` first (it builds the world and its toy CLIP)")
    rows = [r for r in ROWS if args.only is None or r.name in args.only]
    results = [run_row(row, args.data, args.runs, args.seeds, args.crop) for row in rows]
    classes = len((args.data / "classes.txt").read_text().splitlines())
    print_table(results, 100 / classes)
    write_json(args.json, {"machine": machine(), "rows": {r.row.name: summary(r) for r in results}})


if __name__ == "__main__":
    main()
