"""Training loader throughput (images/s/core) against bare JPEG decoding and a naive per-sample loader.

Competitors, all on the same toy COCO-panoptic images (written to a temp dir, then sharded), one core:
- `decode`: PIL decode + convert("RGB") of the very image bytes in the shards, nothing else: the
  physical limit of this stage. `decode_fraction` = loader rate / decode rate (target >= 0.5).
- `openseg loader`: `build_train_loader(need_words=False)`, workers=0, torch pinned to 1 thread (what a
  DataLoader worker runs with): shards -> decode -> segment map -> scale jitter, crop, flip -> batches.
- `naive mapper`: the detectron2-mapper way, per sample: the panoptic JSON entry (JSON loaded once),
  open the JPEG and the panoptic PNG from disk, PNG -> ids (R + 256 G + 256^2 B), one binary mask per
  segment, the same resize/crop/flip on image and masks, batched. `speedup` = loader / naive (target >= 1.5).
Optionally (`--workers1`) the loader with one DataLoader worker, threads shared as `openseg train` does.

Run: .venv/bin/python benchmarks/loader.py [--json PATH] [--images 96] [--image-size 640] [--crop 640]
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import json
import pstats
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from _common import Runs, console, machine, measure, results_table, targets_table, write_json
from PIL import Image

from openseg_cli.config.schema import DataConfig
from openseg_cli.data.coco import coco_paths, write_coco_shards
from openseg_cli.data.decode import class_lookup
from openseg_cli.data.loader import build_train_loader, iter_samples
from openseg_cli.data.shards import read_manifest
from openseg_cli.data.toy import write_toy_dataset
from openseg_cli.data.transforms import normalise, pad_to, resize_image
from openseg_cli.engine.cpu import share_cpu_cores

DECODE_TARGET = 0.5  # loader rate / bare decode rate
SPEEDUP_TARGET = 1.5  # loader rate / naive per-sample rate


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", help="write the figures to this JSON file")
    p.add_argument("--images", type=int, default=96, help="toy images (= images per repeat), default 96")
    p.add_argument("--image-size", type=int, default=640, help="long side of the toy images, default 640")
    p.add_argument("--crop", type=int, default=640, help="training crop size S, default 640")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per competitor (median reported)")
    p.add_argument("--workers1", action="store_true", help="also time the loader with 1 DataLoader worker")
    p.add_argument("--profile", action="store_true", help="cProfile one pass of the loader, print the top")
    p.add_argument("--data", help="a folder to write (or reuse) the toy data in; default a temp dir")
    args = p.parse_args(argv)
    if args.images < args.batch_size or args.images % args.batch_size:
        p.error("--images must be a positive multiple of --batch-size")
    return args


def make_data(root: Path, images: int, image_size: int) -> Path:
    """Toy COCO-panoptic split (train2017) under root plus shards (4 of them, so workers fit)."""
    shard_dir = root / "shards"
    if (shard_dir / "manifest.json").exists():
        return shard_dir
    write_toy_dataset(root, images, 0, image_size=image_size)
    maxcount = max(1, -(-images // 4))
    write_coco_shards(coco_paths(root, "train2017"), shard_dir, "train2017", maxcount=maxcount)
    return shard_dir


# ---------------------------------------------------------------- references


def decode_pass(image_bytes: list[bytes]) -> int:
    """The physical limit: decode every image, nothing else."""
    for data in image_bytes:
        Image.open(io.BytesIO(data)).convert("RGB")
    return len(image_bytes)


class NaiveMapper:
    """A detectron2-style per-sample mapper over the COCO panoptic layout on disk (no shards).

    Output per batch: images float [B, 3, S, S] CLIP-normalised, masks list[B] of bool [M_b, S, S],
    classes list[B] of long [M_b]: the same information as our segment map, as binary masks.
    """

    def __init__(self, root: Path, split: str, cfg: DataConfig, seed: int = 0) -> None:
        paths = coco_paths(root, split, captions=False)
        panoptic = json.loads(Path(paths.panoptic_json).read_text())  # loaded once, like detectron2
        self.class_of = {int(c["id"]): i for i, c in enumerate(panoptic["categories"])}
        files = {im["id"]: im["file_name"] for im in panoptic["images"]}
        self.entries = [
            (Path(paths.images_dir) / files[a["image_id"]], Path(paths.panoptic_dir) / a["file_name"], a)
            for a in panoptic["annotations"]
        ]
        self.cfg, self.epoch = cfg, 0
        self.gen = torch.Generator().manual_seed(seed)

    def map(self, image_path: Path, png_path: Path, ann: dict[str, Any]) -> dict[str, torch.Tensor]:
        image = np.array(Image.open(image_path).convert("RGB"))  # writable, for torch
        rgb = np.asarray(Image.open(png_path).convert("RGB"), dtype=np.int64)
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
        masks, classes = [], []
        for seg in ann["segments_info"]:
            if seg.get("iscrowd", 0):
                continue
            masks.append(ids == seg["id"])
            classes.append(self.class_of[seg["category_id"]])
        h, w = ids.shape
        mask_t = torch.from_numpy(np.stack(masks)) if masks else torch.zeros((0, h, w), dtype=torch.bool)
        img, mask_t = self.transform(torch.from_numpy(image), mask_t)
        keep = mask_t.flatten(1).any(1)  # segments cropped away entirely are dropped
        return {"image": img, "masks": mask_t[keep], "classes": torch.tensor(classes)[keep]}

    def transform(self, image: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The same scale jitter, crop and flip as `train_transform`, applied to each mask."""
        s, (lo, hi), gen = self.cfg.crop_size, self.cfg.scale_range, self.gen
        h, w = masks.shape[-2:]
        scale = s / max(h, w) * (lo + (hi - lo) * float(torch.rand((), generator=gen)))
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        img = resize_image(image.permute(2, 0, 1).float(), size)
        m = F.interpolate(masks[None].float(), size=size, mode="nearest-exact")[0] > 0.5
        y0 = int(torch.randint(0, max(size[0] - s, 0) + 1, (), generator=gen))
        x0 = int(torch.randint(0, max(size[1] - s, 0) + 1, (), generator=gen))
        img = pad_to(normalise(img[:, y0 : y0 + s, x0 : x0 + s]), s, 0.0)
        m = pad_to(m[:, y0 : y0 + s, x0 : x0 + s], s, False)
        if self.cfg.hflip and float(torch.rand((), generator=gen)) < 0.5:
            img, m = img.flip(-1), m.flip(-1)
        return img.contiguous(), m.contiguous()

    def epoch_pass(self) -> int:
        """One shuffled pass over every entry, collated in batches; returns the images processed."""
        order = list(range(len(self.entries)))
        random.Random(self.epoch).shuffle(order)
        self.epoch += 1
        done, bs = 0, self.cfg.batch_size
        for start in range(0, len(order) - bs + 1, bs):
            samples = [self.map(*self.entries[i]) for i in order[start : start + bs]]
            batch = {
                "images": torch.stack([x["image"] for x in samples]),
                "masks": [x["masks"] for x in samples],
                "classes": [x["classes"] for x in samples],
            }
            done += len(batch["images"])
        return done


# ---------------------------------------------------------------- ours


def loader_pass(loader: Any) -> int:
    return sum(len(batch["keys"]) for batch in loader)


def worker_pids(loader: Any) -> list[int]:
    it = getattr(loader, "_iterator", None)
    return [w.pid for w in getattr(it, "_workers", [])]


def same_inputs(shard_dir: Path, root: Path) -> list[bytes]:
    """The image bytes in the shards; checks they are the files the naive mapper reads (never re-encoded)."""
    image_bytes = []
    for sample in iter_samples(shard_dir):
        on_disk = (root / "train2017" / sample["meta"]["file_name"]).read_bytes()
        if hashlib.sha1(on_disk).digest() != hashlib.sha1(sample["image"]).digest():
            raise SystemExit(f"{sample['key']}: shard bytes differ from the JPEG on disk")
        image_bytes.append(sample["image"])
    return image_bytes


def profile_loader(loader: Any, top: int = 15) -> None:
    prof = cProfile.Profile()
    prof.enable()
    loader_pass(loader)
    prof.disable()
    console.rule("cProfile: one pass of the openseg loader (workers=0), top by own time")
    pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(top)


def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    shard_dir = make_data(root, args.images, args.image_size)
    image_bytes = same_inputs(shard_dir, root)
    n = len(image_bytes)
    if n % args.batch_size:
        raise SystemExit(f"{n} images is not a multiple of batch size {args.batch_size}")
    cfg = DataConfig(crop_size=args.crop, workers=0, batch_size=args.batch_size, shuffle_buffer=64)
    # One core: DataLoader workers run torch with 1 thread, so the in-process figure does the same.
    torch.set_num_threads(1)
    ours = build_train_loader(shard_dir, cfg, steps_per_epoch=n // args.batch_size, need_words=False)
    naive = NaiveMapper(root, "train2017", cfg)
    assert len(class_lookup(read_manifest(shard_dir)["categories"])) == len(naive.class_of)
    competitors = [
        (Runs("decode", n), lambda: decode_pass(image_bytes), None),
        (Runs("openseg loader", n), lambda: loader_pass(ours), None),
        (Runs("naive mapper", n), naive.epoch_pass, None),
    ]
    for _runs, fn, _pids in competitors:  # warm-up: page cache, allocator, lazy imports
        fn()
    for _ in range(args.repeats):
        for runs, fn, pids in competitors:
            measure(runs, fn, pids)
    all_runs = [r for r, _f, _p in competitors]
    if args.workers1:
        all_runs.append(time_one_worker(shard_dir, args, n))
        torch.set_num_threads(1)
    if args.profile:
        profile_loader(ours)
    return summarise(args, all_runs)


def time_one_worker(shard_dir: Path, args: argparse.Namespace, n: int) -> Runs:
    """The loader with 1 DataLoader worker, torch threads shared as `openseg train` does (cpu.py)."""
    share_cpu_cores(1)
    cfg = DataConfig(crop_size=args.crop, workers=1, batch_size=args.batch_size, shuffle_buffer=64)
    loader = build_train_loader(shard_dir, cfg, steps_per_epoch=n // args.batch_size, need_words=False)
    runs = Runs("openseg loader, 1 worker", n)
    loader_pass(loader)  # warm-up: starts the persistent worker
    for _ in range(args.repeats):
        measure(runs, lambda: loader_pass(loader), lambda: worker_pids(loader))
    return runs


def summarise(args: argparse.Namespace, runs: list[Runs]) -> dict[str, Any]:
    by_name = {r.name: r for r in runs}
    decode, ours, naive = by_name["decode"], by_name["openseg loader"], by_name["naive mapper"]
    decode_fraction = ours.rate_per_core / decode.rate_per_core
    speedup = ours.rate_per_core / naive.rate_per_core
    title = (
        f"training loader, {ours.items} toy images ({args.image_size} px) -> {args.crop} crops, "
        f"batch {args.batch_size}, median of {args.repeats}"
    )
    console.print(results_table(title, runs, "images", reference=naive))
    console.print(
        targets_table(
            [
                ("decode_fraction", "loader / bare JPEG decode", decode_fraction, DECODE_TARGET),
                ("speedup", "loader / naive per-sample mapper", speedup, SPEEDUP_TARGET),
            ]
        )
    )
    console.print(
        "images/s/core = images per CPU second of every process involved; ratios use images/s/core."
    )
    return {
        "benchmark": "loader",
        "speedup": speedup,
        "decode_fraction": decode_fraction,
        "targets": {
            "speedup": {"target": SPEEDUP_TARGET, "met": speedup >= SPEEDUP_TARGET},
            "decode_fraction": {"target": DECODE_TARGET, "met": decode_fraction >= DECODE_TARGET},
        },
        "results": {r.name: r.as_dict("images") for r in runs},
        "config": {k: v for k, v in vars(args).items() if k not in ("json", "data")},
        "machine": machine(),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.data:
        payload = run(args, Path(args.data))
    else:
        with tempfile.TemporaryDirectory(prefix="openseg-bench-loader-") as tmp:
            payload = run(args, Path(tmp))
    write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
