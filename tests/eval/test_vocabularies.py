"""The shipped benchmark vocabularies against the reference copies of the published lists."""

from __future__ import annotations

import pytest

from openseg_cli.errors import UsageError
from openseg_cli.eval.vocabularies import VOCABULARY_SIZES, benchmark_classes, list_vocabularies


def _lines(path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("name", sorted(VOCABULARY_SIZES))
def test_every_vocabulary_reads_with_its_published_count(name) -> None:
    classes = benchmark_classes(name)
    assert len(classes) == VOCABULARY_SIZES[name]
    assert all(synonyms and all(s == s.strip() and s for s in synonyms) for synonyms in classes)


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("ade847", "ade847.txt"),
        ("pc59", "pc59.txt"),
        ("pc459", "pc459_spaced_san.txt"),
        ("coco_stuff171", "coco_stuff171.txt"),
    ],
)
def test_lists_equal_the_published_ones_name_for_name(shared_data, name, reference) -> None:
    expected = [
        [s.strip() for s in line.split(",")] for line in _lines(shared_data / "class-names" / reference)
    ]
    assert benchmark_classes(name) == expected


def test_pc459_is_catsegs_order_with_spaces(shared_data) -> None:
    fused = _lines(shared_data / "class-names" / "pc459.txt")
    assert [c[0].replace(" ", "") for c in benchmark_classes("pc459")] == fused
    assert benchmark_classes("pc459")[2] == ["air conditioner"]


def test_ade150_holds_every_objectinfo_synonym_in_catseg_order(shared_data) -> None:
    catseg = _lines(shared_data / "class-names" / "ade150.txt")
    rows = (shared_data / "ade20k-150-sceneparsing" / "objectInfo150.txt").read_text().splitlines()[1:]
    official = [[s.strip() for s in row.split("\t")[4].split(",")] for row in rows]
    classes = benchmark_classes("ade150")
    assert classes == official
    for index, (synonyms, name) in enumerate(zip(classes, catseg, strict=True)):
        assert name in synonyms, index  # CAT-Seg's name is one of ours, at the same label index
    differing = [i for i, (s, n) in enumerate(zip(classes, catseg, strict=True)) if s[0] != n]
    assert differing == [89]  # "television" first here, "television receiver" in CAT-Seg
    assert classes[12][:2] == ["person", "individual"]


def test_voc20_is_the_pascal_subset_of_pc59_in_alphabetical_order(shared_data) -> None:
    voc = [c[0] for c in benchmark_classes("voc20")]
    assert voc == sorted(voc) and len(set(voc)) == 20
    assert set(voc) <= set(_lines(shared_data / "class-names" / "pc59.txt"))
    assert {"person", "diningtable", "tvmonitor"} <= set(voc)


def test_unknown_vocabulary_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="ade150"):
        benchmark_classes("ade151")
    assert "voc20" in list_vocabularies()
