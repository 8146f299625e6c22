"""A self-contained HTML evaluation report: one file, opened offline in any browser.

Everything is inline (CSS, images as base64 PNG data URIs); no JavaScript, no external fetch. Sections:
1. header: mIoU, fwIoU, pixel and mean accuracy, images, classes evaluated, then every `meta` field
   (checkpoint or clip, benchmark/shards, mask source, class groups file, size, templates …); with class
   groups (`eval.groups`), a "Class groups" block: hIoU and each group's mIoU;
2. the 5 best and 5 worst evaluated classes;
3. examples, one row each: image | ground truth overlay | prediction overlay, with a legend of the classes
   present in either (colours from `inference.visualize.palette`, overlays from its `overlay_png`);
4. the per-class table: IoU descending with a bar each (and a group column with class groups); classes
   without ground truth ("—") last.

Class names and keys come from user files, so every text is `html.escape`d. Size: about 0.2 kB per class
row plus, per example, three PNGs of at most `MAX_SIDE` pixels a side (examples are downscaled).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from openseg_cli.atomic import atomic_write_text
from openseg_cli.inference.visualize import UNKNOWN_COLOR, overlay_png, palette

MAX_SIDE = 256  # pixels; larger examples are downscaled so the report stays small
HIGHLIGHTS = 5  # best / worst classes called out
_META_ORDER = (
    "benchmark",
    "checkpoint",
    "clip",
    "shards",
    "mask_source",
    "vocabulary",
    "class_groups",
    "size",
    "templates",
)
_HEADLINE = (
    ("mIoU", "miou"),
    ("fwIoU", "fwiou"),
    ("pixel accuracy", "pixel_accuracy"),
    ("mean accuracy", "mean_accuracy"),
)
_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:22px;margin:0 0 12px}h2{font-size:18px;margin:28px 0 8px}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{border:1px solid #ddd;border-radius:6px;padding:8px 14px;min-width:110px}
.card b{display:block;font-size:22px}.card span{color:#666;font-size:12px}
dl.meta{display:grid;grid-template-columns:max-content auto;gap:2px 12px;margin:12px 0}
dl.meta dt{color:#666}dl.meta dd{margin:0;word-break:break-all}
.note{color:#666;font-size:12px}
.hl{display:flex;gap:40px;flex-wrap:wrap}.hl ol{margin:4px 0;padding-left:22px}
table{border-collapse:collapse}td,th{padding:2px 8px;text-align:left;border-bottom:1px solid #eee}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.bar{width:240px;height:10px;background:#eee}.bar span{display:block;height:10px;background:#4a7bd0}
.ex{display:flex;gap:10px;align-items:flex-start;margin:10px 0 18px;flex-wrap:wrap}
.ex figure{margin:0}.ex figcaption{font-size:12px;color:#666}
.ex img{display:block}
.legend{font-size:12px;max-width:280px}.legend div{margin-bottom:2px}
.sw{display:inline-block;width:12px;height:12px;border:1px solid #555;margin-right:6px;vertical-align:-2px}
"""


@dataclass(frozen=True)
class ReportExample:
    """One evaluated image. key: sample key (shown, escaped); image uint8 [H, W, 3] RGB;
    target int64 [H, W] class index, -1 = ignore; prediction int64 [H, W] class index, -1 = unknown."""

    key: str
    image: np.ndarray
    target: np.ndarray
    prediction: np.ndarray


@dataclass(frozen=True)
class _ClassRow:
    index: int
    names: list[str]  # synonyms, first = display name
    iou: float | None  # None = no ground-truth pixel
    accuracy: float | None
    gt_pixels: int | None
    group: str | None = None  # with class groups (`eval.groups`)


def write_html_report(
    path: Path, metrics: dict, classes: list[list[str]], examples: list[ReportExample]
) -> Path:
    """Write the report (sections in the module doc) to `path` atomically and return it.

    metrics: the metrics.json document of `eval.report.write_metrics_json` (per-class values under
    "per_class"), or the raw `metrics_from_confusion` dict ("per_class_iou" …); missing keys show as
    "n/a" or are left out. classes: C names or synonym lists (may be empty when metrics name them).
    Raises ValueError when the class count differs from the metrics', or an example has a wrong dtype,
    shape, or a label outside [-1, C).
    """
    rows = _class_rows(metrics, classes)
    # Names for the examples: the given classes, else those the metrics hold.
    names = [list(_names(c)) for c in classes] or [r.names for r in sorted(rows, key=lambda r: r.index)]
    sections = [
        _header(metrics),
        _groups(metrics),
        _highlights(rows),
        _examples(examples, names),
        _class_table(rows),
    ]
    return atomic_write_text(path, _page("openseg evaluation report", "".join(sections)))


def _page(title: str, body: str) -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{_e(title)}</title>\n'
        f"<style>{_CSS}</style>\n</head>\n<body>\n<h1>{_e(title)}</h1>\n{body}</body>\n</html>\n"
    )


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _names(name: str | Sequence[str]) -> tuple[str, ...]:
    return (name,) if isinstance(name, str) else tuple(str(n) for n in name) or ("?",)


def _fraction(value: Any) -> float | None:
    """A finite number, else None (null, NaN, text a hand-edited file might hold)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _percent(value: Any, unit: str = "") -> str:
    value = _fraction(value)
    return "n/a" if value is None else f"{100 * value:.2f}{unit}"


def _per_class_values(metrics: dict) -> list[dict]:
    """[{"iou", "accuracy", "gt_pixels", "name"?}, …] from either metrics layout (see `write_html_report`)."""
    if isinstance(metrics.get("per_class"), list):
        return [item if isinstance(item, dict) else {} for item in metrics["per_class"]]
    ious = metrics.get("per_class_iou") or []
    accuracy = metrics.get("per_class_accuracy") or []
    gt_pixels = metrics.get("per_class_gt_pixels") or []
    groups = metrics.get("per_class_group") or []

    def at(values: list, i: int) -> Any:
        return values[i] if i < len(values) else None

    return [
        {"iou": iou, "accuracy": at(accuracy, i), "gt_pixels": at(gt_pixels, i), "group": at(groups, i)}
        for i, iou in enumerate(ious)
    ]


def _class_rows(metrics: dict, classes: Sequence) -> list[_ClassRow]:
    """Rows sorted by IoU descending (ties by index); classes without ground truth last, by index."""
    values = _per_class_values(metrics)
    if classes and values and len(values) != len(classes):
        raise ValueError(f"{len(values)} per-class values but {len(classes)} class names")
    rows = []
    for i, item in enumerate(values):
        names = _names(classes[i]) if classes else _names(str(item.get("name", f"class {i}")))
        gt_pixels = item.get("gt_pixels")
        rows.append(
            _ClassRow(
                index=i,
                names=list(names),
                iou=_fraction(item.get("iou")),
                accuracy=_fraction(item.get("accuracy")),
                gt_pixels=int(gt_pixels) if isinstance(gt_pixels, int | float) else None,
                group=str(item["group"]) if item.get("group") is not None else None,
            )
        )
    return sorted(rows, key=lambda r: (r.iou is None, -(r.iou or 0.0), r.index))


def _header(metrics: dict) -> str:
    meta = metrics.get("meta") if isinstance(metrics.get("meta"), dict) else {}
    cards = [(label, _percent(metrics.get(key), "%")) for label, key in _HEADLINE]
    images = meta.get("images", metrics.get("images"))
    if images is not None:
        cards.append(("images", images))
    evaluated, total = metrics.get("num_classes_evaluated"), metrics.get("num_classes")
    if evaluated is not None and total is not None:
        cards.append(("classes evaluated", f"{evaluated} / {total}"))
    html_cards = _cards(cards)
    keys = [k for k in _META_ORDER if k in meta] + sorted(k for k in meta if k not in _META_ORDER)
    items = "".join(
        f"<dt>{_e(str(k).replace('_', ' '))}</dt><dd>{_e(_meta_text(meta[k]))}</dd>"
        for k in keys
        if meta[k] is not None and k != "images"
    )
    note = f'<p class="note">{_e(metrics["convention"])}</p>\n' if metrics.get("convention") else ""
    details = f'<dl class="meta">{items}</dl>\n' if items else ""
    return f"{html_cards}{details}{note}"


def _cards(cards: Sequence[tuple[str, Any]]) -> str:
    items = "".join(f"<div class=card><b>{_e(v)}</b><span>{_e(k)}</span></div>" for k, v in cards)
    return f'<div class="cards">{items}</div>\n'


def _groups(metrics: dict) -> str:
    """hIoU and one card per class group (mIoU, classes evaluated / listed); "" without groups."""
    groups = metrics.get("groups")
    if not isinstance(groups, dict) or not groups:
        return ""
    cards = [("hIoU (seen, unseen)", _percent(metrics["hiou"], "%"))] if "hiou" in metrics else []
    for name, figures in groups.items():
        figures = figures if isinstance(figures, dict) else {}
        listed = figures.get("classes") if isinstance(figures.get("classes"), list) else []
        evaluated = figures.get("classes_evaluated", "?")
        label = f"mIoU {name} ({evaluated} / {len(listed)} classes)"
        cards.append((label, _percent(figures.get("miou"), "%")))
    return f'<h2>Class groups</h2>\n<div id="groups">{_cards(cards)}</div>\n'


def _meta_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _highlights(rows: list[_ClassRow]) -> str:
    """Best and worst `HIGHLIGHTS` evaluated classes (worst lowest first). A class is listed once: with
    fewer than 2·HIGHLIGHTS evaluated classes, the upper half (rounded up) is "best", the rest "worst"."""
    ranked = [row for row in rows if row.iou is not None]
    best = ranked[: min(HIGHLIGHTS, (len(ranked) + 1) // 2)]
    worst = ranked[len(best) :][-HIGHLIGHTS:][::-1]

    def listing(title: str, chosen: list[_ClassRow]) -> str:
        items = (
            "".join(f"<li>{_e(r.names[0])} — {_percent(r.iou, '%')}</li>" for r in chosen) or "<li>none</li>"
        )
        return f"<div><h3>{title}</h3><ol>{items}</ol></div>"

    body = listing("best IoU", best) + listing("worst IoU", worst)
    return f'<h2>Best and worst classes</h2>\n<div class="hl">{body}</div>\n'


def _class_table(rows: list[_ClassRow]) -> str:
    """One row per class in `rows` order; evaluated classes get a rank and a bar, the others "—"."""
    lines = []
    grouped = any(row.group is not None for row in rows)
    for position, row in enumerate(rows, start=1):
        evaluated = row.iou is not None
        rank = str(position) if evaluated else ""
        bar = (
            f'<div class="bar"><span style="width:{100 * min(max(row.iou, 0.0), 1.0):.1f}%"></span></div>'
            if evaluated
            else ""
        )
        iou = _percent(row.iou) if evaluated else "—"
        accuracy = "—" if row.accuracy is None else _percent(row.accuracy)
        pixels = "—" if row.gt_pixels is None else f"{row.gt_pixels:,}"
        group = f"<td>{_e(row.group or '')}</td>" if grouped else ""
        lines.append(
            f'<tr><td class="num">{rank}</td><td title="{_e(", ".join(row.names))}">{_e(row.names[0])}</td>'
            f'{group}<td class="num">{iou}</td><td>{bar}</td><td class="num">{accuracy}</td>'
            f'<td class="num">{pixels}</td></tr>'
        )
    group_head = "<th>group</th>" if grouped else ""
    head = (
        f"<tr><th>#</th><th>class</th>{group_head}<th>IoU %</th><th></th><th>accuracy %</th>"
        "<th>GT pixels</th></tr>"
    )
    body = "\n".join(lines) or '<tr><td colspan="6">no per-class values</td></tr>'
    return (
        '<h2>Per-class IoU</h2>\n<p class="note">"—": no ground-truth pixel (left out of mIoU)</p>\n'
        f'<table id="per-class">\n<thead>{head}</thead>\n<tbody>\n{body}\n</tbody>\n</table>\n'
    )


def _examples(examples: Sequence[ReportExample], names: list[list[str]]) -> str:
    if not examples:
        return ""
    colours = palette(len(names))
    rows = "".join(_example_row(example, names, colours) for example in examples)
    return f"<h2>Examples</h2>\n{rows}"


def _example_row(example: ReportExample, names: list[list[str]], colours: np.ndarray) -> str:
    image, target, prediction = _checked(example, len(names))
    image, target, prediction = _downscaled(image, target, prediction)
    height, width = target.shape
    pictures = [
        ("image", Image.fromarray(image)),
        ("ground truth", overlay_png(image, target, names).crop((0, 0, width, height))),
        ("prediction", overlay_png(image, prediction, names).crop((0, 0, width, height))),
    ]
    figures = "".join(
        f'<figure><img src="{_data_uri(picture)}" width="{width}" height="{height}" '
        f'alt="{_e(caption)} {_e(example.key)}"><figcaption>{_e(caption)}</figcaption></figure>'
        for caption, picture in pictures
    )
    legend = _legend(target, prediction, names, colours)
    return f'<h3>{_e(example.key)}</h3>\n<div class="ex">{figures}<div class="legend">{legend}</div></div>\n'


def _checked(example: ReportExample, num_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    image = np.asarray(example.image)
    target = np.asarray(example.target).astype(np.int64)
    prediction = np.asarray(example.prediction).astype(np.int64)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"example {example.key!r}: image must be uint8 [H, W, 3], got {image.dtype} {image.shape}"
        )
    if target.shape != image.shape[:2] or prediction.shape != image.shape[:2]:
        raise ValueError(
            f"example {example.key!r}: image {image.shape[:2]}, target {target.shape} and prediction "
            f"{prediction.shape} differ in size"
        )
    for what, labels in (("target", target), ("prediction", prediction)):
        if labels.size and (labels.min() < -1 or labels.max() >= num_classes):
            raise ValueError(
                f"example {example.key!r}: {what} holds [{labels.min()}, {labels.max()}], "
                f"outside [-1, {num_classes})"
            )
    return image, target, prediction


def _downscaled(image: np.ndarray, *labels: np.ndarray) -> tuple[np.ndarray, ...]:
    """Fit the longer side to `MAX_SIDE`: the image bilinear, label maps nearest (indices stay classes)."""
    height, width = image.shape[:2]
    scale = MAX_SIDE / max(height, width, 1)
    if scale >= 1:
        return (image, *labels)
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    rows = np.minimum((np.arange(new_h) + 0.5) / scale, height - 1).astype(np.int64)
    cols = np.minimum((np.arange(new_w) + 0.5) / scale, width - 1).astype(np.int64)
    small = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BILINEAR))
    return (small, *(label[np.ix_(rows, cols)] for label in labels))


def _data_uri(picture: Image.Image) -> str:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _legend(target: np.ndarray, prediction: np.ndarray, names: list[list[str]], colours: np.ndarray) -> str:
    """Classes present in target or prediction, largest (GT + predicted area) first, with area %."""
    num = len(names)
    gt_counts = np.bincount(target[target >= 0].ravel(), minlength=num)
    pred_counts = np.bincount(prediction[prediction >= 0].ravel(), minlength=num)
    total = max(target.size, 1)
    entries = []
    for index in np.argsort(-(gt_counts + pred_counts), kind="stable"):
        if gt_counts[index] + pred_counts[index] == 0:
            break
        area = f"GT {100 * gt_counts[index] / total:.1f}% · pred {100 * pred_counts[index] / total:.1f}%"
        entries.append((tuple(colours[index]), names[index][0], area))
    for what, count in (
        ("ignore (GT)", int((target < 0).sum())),
        ("unknown (pred)", int((prediction < 0).sum())),
    ):
        if count:
            entries.append((UNKNOWN_COLOR, what, f"{100 * count / total:.1f}%"))
    return "".join(
        f'<div><span class="sw" style="background:rgb({r},{g},{b})"></span>{_e(name)} '
        f'<span class="note">{_e(area)}</span></div>'
        for (r, g, b), name, area in entries
    )
