"""The self-contained HTML evaluation report: content, escaping, order, size, structure, and a real render
in headless Chromium (screenshot + the DOM the browser parsed)."""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from openseg_cli.eval.html_report import MAX_SIDE, ReportExample, write_html_report
from openseg_cli.eval.metrics import SegmentationMetrics
from openseg_cli.eval.report import write_metrics_json
from openseg_cli.inference.visualize import palette

VOID = {"meta", "img", "br", "hr", "input", "link", "source", "wbr", "col", "area", "base", "embed"}
GREY = 100  # flat example images: an overlay pixel is then exactly (GREY + palette colour) / 2


class _Page(HTMLParser):
    """Collects the per-class table rows, <img> attributes, list items, and checks tags balance."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.rows: list[list[str]] = []
        self.images: list[dict] = []
        self.items: list[str] = []
        self.titles: list[str] = []
        self._cell: list[str] | None = None
        self._item: list[str] | None = None
        self._in_table = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag not in VOID:
            self.stack.append(tag)
        if tag == "table" and attrs.get("id") == "per-class":
            self._in_table = True
        elif tag == "tr" and self._in_table:
            self.rows.append([])
        elif tag == "td" and self._in_table:
            self._cell = []
            if "title" in attrs:
                self.titles.append(attrs["title"])
        elif tag == "li":
            self._item = []
        elif tag == "img":
            self.images.append(attrs)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
            return
        self.stack.pop()
        if tag == "table":
            self._in_table = False
        elif tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "li" and self._item is not None:
            self.items.append("".join(self._item).strip())
            self._item = None

    def handle_data(self, data):
        for part in (self._cell, self._item):
            if part is not None:
                part.append(data)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    assert page.errors == [] and page.stack == [], (page.errors, page.stack)
    return page


def _document(ious, names=None, meta=None) -> dict:
    """A metrics.json-shaped document with the given per-class IoUs (None = no ground truth)."""
    names = names or [f"c{i}" for i in range(len(ious))]
    return {
        "schema": 1,
        "miou": 0.5,
        "fwiou": 0.25,
        "pixel_accuracy": 0.75,
        "mean_accuracy": None,
        "meta": meta or {},
        "per_class": [
            {"index": i, "name": n, "iou": v, "accuracy": v, "gt_pixels": 0 if v is None else 10}
            for i, (n, v) in enumerate(zip(names, ious, strict=True))
        ],
    }


def _blend(index: int, num_classes: int) -> tuple[int, ...]:
    return tuple(int(v) for v in np.rint((GREY + palette(num_classes)[index].astype(float)) / 2))


def _example(key: str, height: int, width: int, target_classes, prediction_classes) -> ReportExample:
    """Flat grey image; target and prediction split into vertical bands of the given classes."""
    image = np.full((height, width, 3), GREY, np.uint8)
    bands = np.arange(width) * len(target_classes) // width
    target = np.broadcast_to(np.array(target_classes)[bands], (height, width)).astype(np.int64)
    bands = np.arange(width) * len(prediction_classes) // width
    prediction = np.broadcast_to(np.array(prediction_classes)[bands], (height, width)).astype(np.int64)
    return ReportExample(key, image, target.copy(), prediction.copy())


def _decoded(src: str) -> np.ndarray:
    assert src.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB"))


def test_headline_meta_and_known_values(tmp_path):
    metric = SegmentationMetrics(4)
    # class 0 perfect, class 1 IoU 1/2, class 2 IoU 0, class 3 no ground truth: mIoU 50 %.
    metric.update(torch.tensor([[0, 0, 1, 2, 3]]), torch.tensor([[0, 0, 1, 1, 2]]))
    meta = {
        "checkpoint": "runs/a/model.pt",
        "mask_source": "pred",
        "size": 64,
        "templates": None,
        "images": 7,
    }
    document = json.loads(
        write_metrics_json(
            tmp_path / "m.json", metric.compute(), ["wall", "sky", "road", "cat"], meta
        ).read_text()
    )
    path = write_html_report(
        tmp_path / "r" / "report.html", document, [["wall"], ["sky"], ["road"], ["cat"]], []
    )
    text = path.read_text()
    assert "50.00%" in text and "mIoU" in text  # miou = (1 + 0.5 + 0) / 3
    assert "runs/a/model.pt" in text and "mask source" in text and ">7<" in text and "3 / 4" in text
    assert "templates" not in text  # None meta values are left out
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]  # atomic: no temporary file left
    # The raw compute() dict renders the same per-class table.
    raw = write_html_report(
        tmp_path / "raw.html", metric.compute(), [["wall"], ["sky"], ["road"], ["cat"]], []
    )
    assert _parse(raw).rows == _parse(path).rows


def test_per_class_order_is_descending_with_missing_last(tmp_path):
    ious = [0.1, None, 0.9, 0.5, None, 0.5]
    path = write_html_report(tmp_path / "r.html", _document(ious), [[f"c{i}"] for i in range(6)], [])
    rows = _parse(path).rows[1:]  # [0] is the header row
    assert [r[1] for r in rows] == ["c2", "c3", "c5", "c0", "c1", "c4"]  # ties by index
    assert [r[2] for r in rows] == ["90.00", "50.00", "50.00", "10.00", "—", "—"]
    assert [r[0] for r in rows] == ["1", "2", "3", "4", "", ""]  # classes without ground truth: no rank


def test_best_and_worst_classes(tmp_path):
    ious = [i / 11 for i in range(12)]  # c11 best … c0 worst
    page = _parse(write_html_report(tmp_path / "r.html", _document(ious), [], []))
    names = [item.split(" — ")[0] for item in page.items]
    assert names == ["c11", "c10", "c9", "c8", "c7", "c0", "c1", "c2", "c3", "c4"]
    # Few classes: each listed once, the upper half as best.
    page = _parse(write_html_report(tmp_path / "s.html", _document([0.2, None, 0.8, 0.5]), [], []))
    assert [item.split(" — ")[0] for item in page.items] == ["c2", "c3", "c0"]


def test_escapes_class_names_and_keys(tmp_path):
    evil = "<script>alert(1)</script>"
    key = '"><img src=x onerror=alert(1)>'
    classes = [[evil, 'a "quoted" synonym'], ["sky"]]
    example = _example(key, 8, 8, [0], [1])
    path = write_html_report(tmp_path / "r.html", _document([0.5, 0.25], [evil, "sky"]), classes, [example])
    text = path.read_text()
    assert "<script" not in text and "onerror=alert(1)>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    page = _parse(path)
    assert [img["src"][:5] for img in page.images] == ["data:"] * 3  # the key did not inject an <img>
    assert f'{evil}, a "quoted" synonym' in page.titles  # attribute escaping round-trips
    assert page.rows[1][1] == evil


def test_self_contained(tmp_path):
    example = _example("k", 16, 16, [0, 1], [1, -1])
    text = write_html_report(
        tmp_path / "r.html", _document([0.5, 0.4]), [["a"], ["b"]], [example]
    ).read_text()
    assert not re.search(r"https?://|<link|<script|url\(|@import", text)
    assert all(src.startswith("data:image/png;base64,") for src in re.findall(r'src="([^"]*)"', text))


def test_overlays_have_known_colours_and_downscale(tmp_path):
    example = _example("big", 480, 640, [0, 2], [1, -1])
    path = write_html_report(
        tmp_path / "r.html", _document([0.5, 0.4, 0.3]), [["a"], ["b"], ["c"]], [example]
    )
    images = _parse(path).images
    assert [(img["width"], img["height"]) for img in images] == [(str(MAX_SIDE), str(MAX_SIDE * 3 // 4))] * 3
    picture, truth, prediction = (_decoded(img["src"]) for img in images)
    assert picture.shape == (MAX_SIDE * 3 // 4, MAX_SIDE, 3) and (picture == GREY).all()
    assert tuple(truth[5, 5]) == _blend(0, 3) and tuple(truth[5, -5]) == _blend(2, 3)
    assert tuple(prediction[5, 5]) == _blend(1, 3)
    assert tuple(prediction[5, -5]) == (GREY // 2,) * 3  # unknown: the image darkened by half


def test_all_ignore_target_renders(tmp_path):
    example = _example("void", 10, 12, [-1], [0])
    path = write_html_report(tmp_path / "r.html", _document([None, None]), [["a"], ["b"]], [example])
    text = path.read_text()
    # Legend: class 0 predicted everywhere, no ground truth; the target all ignored.
    assert "a <span" in text and "GT 0.0% · pred 100.0%" in text and "ignore (GT) " in text
    page = _parse(path)
    assert len(page.images) == 3
    assert [r[2] for r in page.rows[1:]] == ["—", "—"]
    assert "n/a" in text  # mean accuracy None in the document


def test_missing_keys_are_tolerated(tmp_path):
    path = write_html_report(tmp_path / "r.html", {}, [["a"], ["b"]], [_example("k", 4, 4, [0], [1])])
    text = path.read_text()
    assert text.count("n/a") == 4 and "no per-class values" in text
    _parse(path)


def test_bad_input_is_refused(tmp_path):
    classes = [["a"], ["b"]]
    with pytest.raises(ValueError, match="class names"):
        write_html_report(tmp_path / "r.html", _document([0.5, 0.5, 0.5]), classes, [])
    bad_label = _example("k", 4, 4, [0], [2])
    with pytest.raises(ValueError, match=r"'k': prediction holds \[2, 2\], outside \[-1, 2\)"):
        write_html_report(tmp_path / "r.html", _document([0.5, 0.5]), classes, [bad_label])
    good = _example("k", 4, 4, [0], [1])
    shapes = ReportExample("k", good.image, good.target[:2], good.prediction)
    with pytest.raises(ValueError, match="differ in size"):
        write_html_report(tmp_path / "r.html", _document([0.5, 0.5]), classes, [shapes])
    floats = ReportExample("k", good.image.astype(np.float32), good.target, good.prediction)
    with pytest.raises(ValueError, match="uint8"):
        write_html_report(tmp_path / "r.html", _document([0.5, 0.5]), classes, [floats])
    assert not (tmp_path / "r.html").exists()


def test_847_classes_stay_small(tmp_path):
    rng = np.random.default_rng(0)
    num = 847
    ious = [None if i % 7 == 0 else float(v) for i, v in enumerate(rng.random(num))]
    classes = [[f"class number {i}", f"synonym {i}"] for i in range(num)]
    examples = []
    for k in range(4):
        image = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
        blocks = rng.integers(-1, num, (12, 16))  # 40 px blocks of random classes
        labels = np.kron(blocks, np.ones((40, 40), np.int64))
        examples.append(ReportExample(f"ade-{k}", image, labels, np.roll(labels, 40, axis=1)))
    start = time.perf_counter()
    path = write_html_report(tmp_path / "r.html", _document(ious), classes, examples)
    seconds = time.perf_counter() - start
    page = _parse(path)
    size = path.stat().st_size
    print(f"847 classes, 4 random-noise examples: {size / 1e6:.2f} MB in {seconds:.2f} s")
    missing = sum(v is None for v in ious)
    assert len(page.rows) == num + 1  # header + one row a class
    assert [r[2] for r in page.rows[-missing:]] == ["—"] * missing and page.rows[-missing - 1][2] != "—"
    legend_rows = path.read_text().count('class="sw"')
    assert legend_rows < 4 * (2 * 12 * 16 + 2)  # only classes present, not 847 per example
    # Random noise is the worst case for PNG; the class table itself is ~0.2 kB a row.
    assert size < 4_000_000


@pytest.mark.browser
def test_renders_in_headless_chromium(tmp_path, chromium):
    num = 6
    classes = [[f"class {i}"] for i in range(num)]
    examples = [
        _example("first", 160, 200, [0, 1, 2, 3], [0, 1, 4, 5]),
        _example("second", 120, 240, [-1, 2], [3, -1]),
    ]
    report = write_html_report(
        tmp_path / "report.html", _document([0.9, 0.1, None, 0.5, 0.3, None]), classes, examples
    )
    start = time.perf_counter()
    shot = _screenshot(chromium, report, tmp_path)
    dom = _dump_dom(chromium, report, tmp_path)
    print(f"chromium screenshot + DOM dump: {time.perf_counter() - start:.1f} s")

    with Image.open(shot) as picture:
        assert picture.format == "PNG" and picture.size == (1200, 1600)
        pixels = np.asarray(picture.convert("RGB")).reshape(-1, 3)
    packed = (pixels[:, 0].astype(np.int32) << 16) | (pixels[:, 1].astype(np.int32) << 8) | pixels[:, 2]
    colours, counts = np.unique(packed, return_counts=True)
    assert len(colours) > 50 and counts.max() < 0.95 * len(pixels)  # text, bars, overlays: not blank
    for index in range(num + 2):  # each class's blended overlay colour, over exactly its labelled area
        drawn = sum(int((e.target == index).sum() + (e.prediction == index).sum()) for e in examples)
        near = int((np.abs(pixels.astype(int) - _blend(index, num + 2)).max(axis=1) <= 2).sum())
        assert drawn <= near <= drawn + 100, f"class {index}: {near} pixels of its colour, {drawn} drawn"

    match = re.search(r'data-images="(\d+)" data-decoded="(\d+)" data-rows="(\d+)"', dom)
    assert match, dom[:500]
    assert match.groups() == ("6", "6", str(num))  # 2 examples × 3 pictures, all decoded; one row a class


def _headless(chromium: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    flags = [
        "--headless",
        "--no-sandbox",  # we may be root in CI containers
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--force-color-profile=srgb",  # so the overlay colours reach the screenshot unchanged
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ]
    done = subprocess.run([str(chromium), *flags, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"chromium exited {done.returncode}: {done.stderr[-2000:]}"
    return done


def _screenshot(chromium: Path, report: Path, tmp_path: Path) -> Path:
    shot = tmp_path / "shot.png"
    _headless(chromium, tmp_path, f"--screenshot={shot}", "--window-size=1200,1600", report.as_uri())
    assert shot.is_file(), "chromium wrote no screenshot"
    return shot


def _dump_dom(chromium: Path, report: Path, tmp_path: Path) -> str:
    """The DOM after load, from a copy of the report with a probe script that counts decoded images
    (naturalWidth > 0) and per-class rows into <body data-*> attributes (the report itself has no JS)."""
    probe = (
        "<script>addEventListener('load', () => { const imgs = [...document.images]; "
        "const b = document.body; b.dataset.images = imgs.length; "
        "b.dataset.decoded = imgs.filter(i => i.complete && i.naturalWidth > 0).length; "
        "b.dataset.rows = document.querySelectorAll('#per-class tbody tr').length; });</script>"
    )
    probed = tmp_path / "probed.html"
    probed.write_text(report.read_text().replace("</body>", probe + "</body>"))
    return _headless(chromium, tmp_path, "--virtual-time-budget=5000", "--dump-dom", probed.as_uri()).stdout


def test_real_ade_samples(tmp_path, shared_data):
    """Real ADE20K photos and annotations (0 = ignore there, class k → k - 1) with ADE-150's names."""
    root = shared_data / "ade20k-150-sceneparsing" / "ADEChallengeData2016"
    names = json.loads((shared_data / "class-names" / "ade150.json").read_text())
    examples = []
    for image_path in sorted((root / "images" / "validation").glob("*.jpg")):
        image = np.asarray(Image.open(image_path).convert("RGB"))
        annotation = root / "annotations" / "validation" / f"{image_path.stem}.png"
        target = np.asarray(Image.open(annotation)).astype(np.int64) - 1
        examples.append(ReportExample(image_path.stem, image, target, np.roll(target, 25, axis=1)))
    assert examples, f"no ADE images under {root}"
    metric = SegmentationMetrics(len(names))
    for example in examples:
        metric.update(torch.from_numpy(example.prediction), torch.from_numpy(example.target))
    path = write_html_report(tmp_path / "r.html", metric.compute(), [[n.strip()] for n in names], examples)
    page = _parse(path)
    assert len(page.images) == 3 * len(examples) and len(page.rows) == len(names) + 1
    assert ">sky <span" in path.read_text()  # a class these outdoor scenes hold, in a legend
    largest = max(max(_decoded(img["src"]).shape[:2]) for img in page.images)
    assert largest == MAX_SIDE
    assert path.stat().st_size < 400_000 * len(examples)  # three ~256 px PNGs an example
