"""Class groups (`eval.groups`): parsing a groups file against a vocabulary, known-answer group mIoU and
hIoU on a hand-computed confusion matrix, and the figures in metrics.json, the scalars and report.html."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch

from openseg_cli.errors import InputFileError
from openseg_cli.eval.groups import (
    UNGROUPED,
    add_group_figures,
    group_figures,
    harmonic_iou,
    parse_class_groups,
    read_class_groups,
)
from openseg_cli.eval.html_report import write_html_report
from openseg_cli.eval.metrics import metrics_from_confusion
from openseg_cli.eval.report import benchmark_scalars, write_metrics_json

CLASSES = [["circle", "disc"], ["grass", "lawn"], ["ring"], ["heart"], ["wood"]]

# Rows = ground truth, columns = prediction, last column = unknown (eval.metrics' [C, C + 1] layout).
CONFUSION = torch.tensor(
    [
        [3, 1, 0, 0, 0, 0],  # circle: TP 3, GT 4, predicted 3 + 1 → IoU 3 / 5 = 0.6
        [1, 2, 0, 0, 0, 1],  # grass:  TP 2, GT 4 (one unknown), predicted 1 + 2 → IoU 2 / 5 = 0.4
        [0, 0, 2, 2, 0, 0],  # ring:   TP 2, GT 4, predicted 2 → IoU 2 / 4 = 0.5
        [0, 0, 0, 0, 0, 0],  # heart:  no ground truth → IoU undefined (its false positives hurt ring)
        [0, 0, 0, 0, 1, 3],  # wood:   TP 1, GT 4, predicted 1 → IoU 1 / 4 = 0.25
    ]
)
GROUPS = {"seen": ["circle", "grass"], "caption_only": ["ring"], "unseen": ["heart", "wood"]}


def _groups(data=GROUPS, classes=CLASSES):
    return parse_class_groups(data, classes, "groups.json")


def test_known_answer_group_miou_and_hiou() -> None:
    metrics = metrics_from_confusion(CONFUSION)
    assert metrics["per_class_iou"] == pytest.approx([0.6, 0.4, 0.5, None, 0.25])
    assert metrics["miou"] == pytest.approx((0.6 + 0.4 + 0.5 + 0.25) / 4)
    figures = group_figures(metrics["per_class_iou"], _groups())
    assert list(figures["groups"]) == ["seen", "caption_only", "unseen"]  # file order, nothing ungrouped
    seen, caption, unseen = (figures["groups"][g] for g in ("seen", "caption_only", "unseen"))
    assert seen == {"miou": pytest.approx(0.5), "classes": ["circle", "grass"], "classes_evaluated": 2}
    assert caption["miou"] == pytest.approx(0.5)
    # heart has no ground truth: left out of the mean, as the overall mIoU leaves it out.
    assert unseen == {"miou": pytest.approx(0.25), "classes": ["heart", "wood"], "classes_evaluated": 1}
    assert figures["hiou"] == pytest.approx(2 * 0.5 * 0.25 / 0.75)
    assert figures["per_class_group"] == ["seen", "seen", "caption_only", "unseen", "unseen"]


def test_a_group_of_every_class_has_the_overall_miou() -> None:
    metrics = metrics_from_confusion(CONFUSION)
    every = [names[0] for names in CLASSES]
    figures = group_figures(metrics["per_class_iou"], _groups({"all": every}))
    assert figures["groups"]["all"]["miou"] == pytest.approx(metrics["miou"], abs=1e-12)
    assert "hiou" not in figures  # no seen / unseen pair


def test_undefined_groups_and_hiou() -> None:
    metrics = metrics_from_confusion(CONFUSION)
    figures = group_figures(metrics["per_class_iou"], _groups({"seen": ["circle"], "unseen": ["heart"]}))
    assert figures["groups"]["unseen"] == {"miou": None, "classes": ["heart"], "classes_evaluated": 0}
    assert figures["hiou"] is None  # undefined, not 0: no unseen class had a ground-truth pixel
    assert harmonic_iou(0.0, 0.0) == 0.0 and harmonic_iou(0.0, 0.7) == 0.0
    assert harmonic_iou(0.5, 0.5) == pytest.approx(0.5) and harmonic_iou(None, 0.5) is None


def test_synonyms_case_and_whitespace_match_and_the_rest_is_ungrouped() -> None:
    groups = _groups({"seen": ["DISC", "  lawn "], "unseen": ["Wood"]})
    assert groups.names == ("seen", "unseen", UNGROUPED)
    assert groups.of_class == ("seen", "seen", UNGROUPED, UNGROUPED, "unseen")
    figures = group_figures(metrics_from_confusion(CONFUSION)["per_class_iou"], groups)
    assert figures["groups"][UNGROUPED] == {
        "miou": pytest.approx(0.5),
        "classes": ["ring", "heart"],
        "classes_evaluated": 1,
    }


def test_a_name_shared_by_two_classes_puts_both_in_the_group() -> None:
    """ADE-847 names distinct classes alike ("bag"): the name cannot tell them apart, so it lists both."""
    groups = _groups({"seen": ["bag"]}, [["bag"], ["pot"], ["bag", "handbag"]])
    assert groups.of_class == ("seen", UNGROUPED, "seen")
    assert _groups({"seen": ["circle", "disc"]}).members("seen") == [0]  # a class named twice: once


def test_without_groups_the_metrics_are_unchanged() -> None:
    metrics = metrics_from_confusion(CONFUSION)
    assert add_group_figures(metrics, None) is metrics
    assert add_group_figures(metrics, _groups())["hiou"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="5 grouped classes"):
        group_figures([0.5], _groups())


@pytest.mark.parametrize(
    ("data", "needles"),
    [
        (["circle"], ["must hold a JSON object", "found list"]),
        ({}, ["holds no groups"]),
        ({"seen": "circle"}, ["group 'seen' must be a list of class names"]),
        ({"seen": ["circle", 3]}, ["group 'seen' must be a list of class names"]),
        ({"seen": []}, ["group 'seen' is empty"]),
        ({"seen classes": ["circle"]}, ["group name 'seen classes'", "metric key"]),
        ({"ungrouped": ["circle"]}, ["'ungrouped' is reserved"]),
        ({"seen": ["circel"]}, ["group 'seen' lists 'circel'", "did you mean 'circle'?"]),
        ({"seen": ["zebra"]}, ["lists 'zebra', which is no class of the evaluation vocabulary"]),
        (
            {"seen": ["circle"], "unseen": ["disc"]},
            ["class 'circle' is in group 'seen' and in group 'unseen'"],
        ),
    ],
)
def test_bad_groups_are_one_line_naming_the_file(data, needles) -> None:
    with pytest.raises(InputFileError) as err:
        _groups(data)
    message = str(err.value)
    assert "\n" not in message and message.startswith("class groups file groups.json")
    for needle in needles:
        assert needle in message


def test_a_class_named_by_a_synonym_in_two_groups_says_which_name() -> None:
    with pytest.raises(InputFileError, match=r"in group 'seen' and in group 'unseen' \(as 'disc'\)"):
        _groups({"seen": ["circle"], "unseen": ["disc"]})


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('{"seen": ["circle"],}', "is not valid JSON"),
        ('{"seen": ["circle"], "seen": ["grass"]}', "key 'seen' is given twice"),
        (b"\xff\xfe{", "cannot read class groups file"),
    ],
)
def test_bad_files(tmp_path: Path, text, needle) -> None:
    path = tmp_path / "groups.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(InputFileError, match=needle) as err:
        read_class_groups(path, CLASSES)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(InputFileError, match="cannot read class groups file"):
        read_class_groups(tmp_path / "missing.json", CLASSES)
    path.write_text(json.dumps(GROUPS))
    assert read_class_groups(path, CLASSES).source == str(path)


# --- the figures in metrics.json, the logged scalars and report.html ----------------------------------


def _grouped_metrics(data=GROUPS):
    return add_group_figures(metrics_from_confusion(CONFUSION), _groups(data))


def test_metrics_json_holds_groups_hiou_and_each_class_group(tmp_path: Path) -> None:
    path = write_metrics_json(tmp_path / "metrics.json", _grouped_metrics(), CLASSES, {})
    doc = json.loads(path.read_text())
    seen = {"miou": pytest.approx(0.5), "classes": ["circle", "grass"], "classes_evaluated": 2}
    assert doc["groups"]["seen"] == seen
    assert doc["hiou"] == pytest.approx(1 / 3)
    assert [c["group"] for c in doc["per_class"]] == ["seen", "seen", "caption_only", "unseen", "unseen"]
    undefined = write_metrics_json(
        tmp_path / "m2.json", _grouped_metrics({"seen": ["circle"], "unseen": ["heart"]}), CLASSES, {}
    )
    doc = json.loads(undefined.read_text())  # strict JSON
    assert doc["groups"]["unseen"]["miou"] is None and doc["hiou"] is None
    assert list(doc["groups"]) == ["seen", "unseen", UNGROUPED]
    plain_path = write_metrics_json(tmp_path / "m3.json", metrics_from_confusion(CONFUSION), CLASSES, {})
    plain = json.loads(plain_path.read_text())
    assert "groups" not in plain and "hiou" not in plain and "group" not in plain["per_class"][0]


def test_benchmark_scalars_name_each_group_and_hiou() -> None:
    scalars = benchmark_scalars(_grouped_metrics(), "ade150")
    assert scalars["val/miou_seen_ade150"] == pytest.approx(0.5)
    assert scalars["val/miou_unseen_ade150"] == pytest.approx(0.25)
    assert scalars["val/miou_caption_only_ade150"] == pytest.approx(0.5)
    assert scalars["val/hiou_ade150"] == pytest.approx(1 / 3)
    assert "val/hiou_ade150" not in benchmark_scalars(metrics_from_confusion(CONFUSION), "ade150")


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.heads: list[str] = []
        self._th = False

    def handle_starttag(self, tag, attrs):
        self._th = tag == "th"

    def handle_data(self, data):
        self.text.append(data)
        if self._th:
            self.heads.append(data)


def test_report_shows_the_group_block_and_a_group_column(tmp_path: Path) -> None:
    classes = [["<b>circle</b>"], *CLASSES[1:]]
    doc_path = write_metrics_json(tmp_path / "metrics.json", _grouped_metrics(), classes, {"clip": "x:none"})
    document = json.loads(doc_path.read_text())
    html = write_html_report(tmp_path / "report.html", document, classes, []).read_text()
    assert "<b>circle</b>" not in html and "&lt;b&gt;circle&lt;/b&gt;" in html  # escaped
    page = _Text()
    page.feed(html)
    text = " ".join(" ".join(page.text).split())
    assert "Class groups" in text and "33.33% hIoU (seen, unseen)" in text
    assert "50.00% mIoU seen (2 / 2 classes)" in text and "25.00% mIoU unseen (1 / 2 classes)" in text
    assert "group" in page.heads and "x:none" in text
    # The raw metrics dict (what the engine returns) renders the same block.
    raw = write_html_report(tmp_path / "raw.html", {**_grouped_metrics(), "convention": ""}, classes, [])
    assert "mIoU caption_only (1 / 1 classes)" in raw.read_text()
