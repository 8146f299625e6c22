"""`run_prediction`: a checkpoint + images + free-text queries → overlay, label PNG and JSON per image.

Two layers, so that any segmenter can be plugged in:
- `predict_images(scores_fn, images, out_dir, job)` does the per-image work (read, fit + pad, batch,
  score, undo the geometry, label, write, count skips). `scores_fn` maps CLIP-normalised pixels
  float [B, 3, S, S] (on `job.device`) to class scores [B, C, h, w] ≥ 0, C = queries then background
  classes, in that order; an `inference.scorers.Scorer` bound to the vocabulary is one such function.
- `run_prediction(req)` builds that function with `engine.scorers.load_scorer` from an openseg
  checkpoint, or, with `req.clip`, from CLIP weights alone (zero-shot MaskCLIP dense features,
  `inference/zero_shot.py`), and calls `predict_images`.

Unreadable images (corrupt, truncated, not an image, over the pixel limit) are skipped and counted in
the returned summary; `strict=True` makes the first one an error, and a run where no image could be read
is always an error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from openseg_cli.data.images import read_image_file
from openseg_cli.data.transforms import fit_size, normalise, pad_to, resize_image
from openseg_cli.engine.cpu import use_all_cores
from openseg_cli.engine.scorers import load_scorer, scorer_meta
from openseg_cli.errors import InputFileError, UsageError
from openseg_cli.inference.outputs import write_prediction
from openseg_cli.inference.scoring import label_map, normalized_scores, resize_scores

ScoresFn = Callable[[Tensor], Tensor]  # pixels [B, 3, S, S] → class scores [B, C, h, w] (≥ 0)


@dataclass(frozen=True)
class PredictRequest:
    checkpoint: Path | None  # None: zero-shot with `clip`
    images: list[Path]
    classes: list[list[str]]  # each class: its synonyms (max over synonyms)
    size: int | None = None  # None: the recipe's crop size
    unknown_threshold: float | None = None
    mask_source: str = "pred"
    device: str = "cpu"
    templates: list[str] | None = None  # prompt templates averaged per name (None: the bare name)
    batch_size: int = 4
    background: list[list[str]] = field(default_factory=list)  # scored, but drawn/labelled as unknown
    masks: str = "none"  # none | png | rle (see inference/outputs.py)
    max_pixels: int | None = None  # None: $OPENSEG_MAX_PIXELS, else Pillow's limit
    strict: bool = False  # an unreadable image is an error instead of a counted skip
    clip: str | None = None  # "MODEL[:PRETRAINED]": zero-shot with CLIP weights alone (no checkpoint)
    rule: str | None = None  # sum | max over the proposals; None: the checkpoint recipe's inference.rule


@dataclass(frozen=True)
class PredictJob:
    """What `predict_images` needs besides the scores function (all independent of the segmenter)."""

    classes: list[list[str]]
    size: int  # images are fitted into size × size and padded bottom/right
    device: torch.device
    background: list[list[str]] = field(default_factory=list)
    unknown_threshold: float | None = None
    batch_size: int = 4
    masks: str = "none"
    max_pixels: int | None = None
    strict: bool = False
    meta: dict = field(default_factory=dict)  # copied into every JSON's "meta"


@dataclass
class PredictSummary:
    results: list[dict]  # per written image: {"image": path, "files": {kind: path}}
    skipped: list[tuple[str, str]]  # per unreadable image: (path, one-line reason)


@dataclass
class _Item:
    path: Path
    stem: str
    image: np.ndarray  # uint8 [H, W, 3], as displayed
    pixels: Tensor  # float [3, S, S]
    fitted: tuple[int, int]


def fit_and_pad(image: np.ndarray, size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """uint8 [H, W, 3] → (CLIP-normalised float [3, size, size], (h, w) of the fitted image inside it)."""
    fitted = fit_size(image.shape[0], image.shape[1], size)
    tensor = torch.from_numpy(image).permute(2, 0, 1)  # uint8: the fast resize kernel
    return pad_to(normalise(resize_image(tensor, fitted).float()), size, 0.0), fitted


def run_prediction(
    req: PredictRequest, out_dir: Path, progress: Callable[[int], None] | None = None
) -> PredictSummary:
    """Segment every image with the queries of `req` (see module doc); UsageError unless exactly one of
    `req.checkpoint` and `req.clip` is given."""
    if (req.checkpoint is None) == (req.clip is None):
        raise UsageError("give either an openseg checkpoint (-c) or CLIP weights for zero-shot (--clip)")
    device = resolve_device(req.device)
    if device.type == "cpu":
        use_all_cores()  # images are read in this process, between forwards: see engine/cpu.py
    mask_source = None if req.clip else req.mask_source  # --clip scores pixels ("does not apply": --help)
    scorer, default_size = load_scorer(req.checkpoint, req.clip, mask_source, device, req.rule)
    meta = scorer_meta(req.checkpoint, req.clip, mask_source, scorer.rule)
    size = req.size or default_size
    scorer.check_size(size)
    embeds, valid = vocabulary_embeddings(scorer.text_encoder, req, device)

    def scores_fn(pixels: Tensor) -> Tensor:
        return scorer(pixels, embeds, valid)

    return predict_images(scores_fn, req.images, out_dir, request_job(req, size, device, meta), progress)


def vocabulary_embeddings(text_encoder, req: PredictRequest, device: torch.device) -> tuple[Tensor, Tensor]:
    """(embeds [C, S, D], valid [C, S]) on `device` for C = the queries then the background classes,
    through the on-disk text cache; UsageError first for a name longer than the tower's context."""
    from openseg_cli.engine.text_cache import class_embeddings

    vocabulary = [*req.classes, *req.background]
    check_token_lengths(text_encoder.tokenizer, vocabulary, req.templates)
    embeds, valid = class_embeddings(text_encoder, vocabulary, req.templates)
    return embeds.to(device), valid.to(device)


def request_job(req: PredictRequest, size: int, device: torch.device, meta: dict) -> PredictJob:
    """The segmenter-independent part of a request, for `predict_images`."""
    return PredictJob(
        classes=req.classes, size=size, device=device, background=req.background,
        unknown_threshold=req.unknown_threshold, batch_size=req.batch_size, masks=req.masks,
        max_pixels=req.max_pixels, strict=req.strict, meta=meta,
    )  # fmt: skip


def predict_images(
    scores_fn: ScoresFn,
    images: Sequence[Path],
    out_dir: Path,
    job: PredictJob,
    progress: Callable[[int], None] | None = None,
) -> PredictSummary:
    """Score `images` in batches of `job.batch_size` with `scores_fn` and write each one's files.

    scores_fn gets float [B, 3, S, S] on `job.device` (S = job.size) and must return [B, C, h, w] with
    C = len(job.classes) + len(job.background); it runs under `torch.inference_mode`. Results do not
    depend on the batch size (every image is padded to the same S × S canvas). Raises InputFileError
    for the first unreadable image when `job.strict`, and when no image at all could be read.
    """
    summary = PredictSummary([], [])
    num_classes = len(job.classes) + len(job.background)
    with torch.inference_mode():
        for batch in _batches(images, job, summary, progress):
            pixels = torch.stack([item.pixels for item in batch]).to(job.device)
            scores = scores_fn(pixels)
            if scores.ndim != 4 or tuple(scores.shape[:2]) != (len(batch), num_classes):
                raise ValueError(f"scores_fn returned {tuple(scores.shape)}, expected [{len(batch)}, "
                                 f"{num_classes}, h, w]")  # fmt: skip
            for index, item in enumerate(batch):
                summary.results.append(_write_one(item, scores[index : index + 1], out_dir, job))
                if progress:
                    progress(1)
    if summary.skipped and not summary.results:
        _, reason = summary.skipped[0]
        many = f"none of the {len(summary.skipped)} images could be read; first: " if len(images) > 1 else ""
        raise InputFileError(f"{many}{reason}")
    return summary


def _batches(
    images: Sequence[Path], job: PredictJob, summary: PredictSummary, progress
) -> Iterator[list[_Item]]:
    """Readable images fitted and padded, in groups of `job.batch_size`; unreadable ones are recorded
    in `summary.skipped` (or raised when `job.strict`)."""
    batch: list[_Item] = []
    for path, stem in zip(images, _unique_stems(images), strict=True):
        try:
            image = read_image_file(path, job.max_pixels)
        except InputFileError as err:
            if job.strict:
                raise
            summary.skipped.append((str(path), str(err)))
            if progress:
                progress(1)
            continue
        pixels, fitted = fit_and_pad(image, job.size)
        batch.append(_Item(Path(path), stem, image, pixels, fitted))
        if len(batch) == job.batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def _write_one(item: _Item, scores: Tensor, out_dir: Path, job: PredictJob) -> dict:
    """scores [1, C, h, w] of one image → its files; returns {"image", "files"}."""
    height, width = item.image.shape[:2]
    geometry = {"out_size": (job.size, job.size), "valid_size": item.fitted, "image_size": (height, width)}
    labels = label_map(scores, unknown_threshold=job.unknown_threshold, **geometry)[0]
    probs = normalized_scores(resize_scores(scores, **geometry))[0]
    meta = {
        "source": str(item.path),
        **job.meta,
        "size": job.size,
        "unknown_threshold": job.unknown_threshold,
        "device": str(job.device),
    }
    paths = write_prediction(
        out_dir, item.stem, item.image, labels, probs, job.classes, meta=meta,
        background=job.background, masks=job.masks,
    )  # fmt: skip
    return {"image": str(item.path), "files": {k: str(v) for k, v in paths.items()}}


def _unique_stems(paths: Sequence[Path]) -> list[str]:
    """Output stems from file names, each used once: `a.jpg`, `a.png` and a real `a-2.jpg` get `a`,
    `a-3` and `a-2` (a taken name is never reused, so no image's files overwrite another's). Leading dots
    are dropped (`.b.jpg` → `b`): outputs are plain, visible files."""
    bases = [Path(path).stem.lstrip(".") or "image" for path in paths]
    taken = set(bases)  # every plain stem first: a file really named `a-2` keeps its own name
    used: set[str] = set()
    stems = []
    for base in bases:
        stem, number = base, 1
        while stem in used or (stem != base and stem in taken):
            number += 1
            stem = f"{base}-{number}"
        used.add(stem)
        stems.append(stem)
    return stems


def available_devices() -> list[str]:
    """The torch devices this process can use: cpu, then cuda:0..n-1, then mps."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        names.append("mps")
    return names


def resolve_device(name: str | torch.device) -> torch.device:
    """`name` as a torch.device, checked to exist here; UsageError naming the available devices."""
    available = available_devices()
    hint = f"available here: {', '.join(available)}"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise UsageError(f"--device {str(name)!r} is not a torch device ({hint})") from None
    if device.type == "cpu":
        return device
    index = 0 if device.index is None else device.index
    wanted = "mps" if device.type == "mps" else f"{device.type}:{index}"
    if wanted not in available:
        raise UsageError(f"device {str(name)!r} is not available ({hint})")
    return device


def check_token_lengths(tokenizer, classes: Sequence[Sequence[str]], templates: Sequence[str] | None) -> None:
    """UsageError for a class name that, filled into any template, is longer than the text tower reads.

    open_clip's tokenizer cuts a text at its context length (77 for CLIP, start and end tokens
    included) without a word, so an over-long query would silently be scored by its first words only.
    Exact for tokenizers with `encode` (open_clip's SimpleTokenizer); others are not checked.
    """
    from openseg_cli.text.templates import fill_template

    context, encode = getattr(tokenizer, "context_length", None), getattr(tokenizer, "encode", None)
    if not isinstance(context, int) or not callable(encode):
        return
    limit = context - 2  # the start and end tokens take two slots
    for names in classes:
        for name in names:
            for template in templates or ["{}"]:
                count = len(encode(fill_template(template, name)))
                if count > limit:
                    where = f" in template {template!r}" if templates else ""
                    raise UsageError(
                        f"query {name!r} is {count} tokens long{where}, but the text tower reads at most "
                        f"{limit} (context {context} with start/end) and would cut it; shorten it"
                    )
