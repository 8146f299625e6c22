"""extract-nouns over caption files: chunked, resumable, exactly once; 1 vs 2 workers give the same."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from openseg_cli.data.shards import list_shards
from openseg_cli.data.sidecars import nouns_sidecar_path
from openseg_cli.engine.nouns import extract_nouns_from_file, extract_nouns_over_shards
from openseg_cli.engine.nouns_parallel import ExtractorSpec, run_tasks
from openseg_cli.errors import InputFileError, UsageError
from openseg_cli.text.lexicon import LexiconExtractor
from tests.engine.helpers import write_toy_shards


class LastWord:
    """Words = the caption's last word, lower-cased; counts captions seen, so resumed work is visible."""

    description = "last-word-test-extractor"

    def __init__(self) -> None:
        self.captions = 0

    def extract(self, captions: list[str]) -> list[list[str]]:
        self.captions += len(captions)
        return [[c.rstrip(".").split()[-1].lower()] if c.strip() else [] for c in captions]


@pytest.fixture()
def caption_file(tmp_path: Path) -> Path:
    lines = [f"caption number {i} about thing{i}." for i in range(1, 11)]
    lines[3] = "   "  # line 4: empty, skipped
    path = tmp_path / "caps.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def _expected_lines() -> list[dict]:
    return [
        {"line": i, "caption": f"caption number {i} about thing{i}.", "words": [f"thing{i}"]}
        for i in range(1, 11)
        if i != 4
    ]


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_chunks_are_joined_in_line_order(caption_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    summary = extract_nouns_from_file(caption_file, "text", out, LastWord(), chunk_size=4)
    assert _read(out) == _expected_lines()
    assert (summary.captions, summary.chunks, summary.chunks_done, summary.words) == (9, 3, 3, 9)
    assert summary.skips.lines == {"empty caption": [4]}
    assert not out.with_name("out.jsonl.parts").exists()  # cleaned up once joined


def test_resume_does_only_the_missing_chunks(caption_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    first = LastWord()

    def stop_after_two(n: int) -> None:
        first.calls = getattr(first, "calls", 0) + n
        if first.calls == 2:
            raise KeyboardInterrupt  # as if interrupted after the second chunk was written

    with pytest.raises(KeyboardInterrupt):
        extract_nouns_from_file(caption_file, "text", out, first, chunk_size=4, progress=stop_after_two)
    assert not out.exists() and len(list(out.with_name("out.jsonl.parts").glob("chunk-*"))) == 2
    again = LastWord()
    summary = extract_nouns_from_file(caption_file, "text", out, again, chunk_size=4)
    assert again.captions == 1  # only the last chunk (line 10) was tagged again
    assert (summary.chunks_reused, summary.chunks_done, summary.words) == (2, 1, 9)
    assert _read(out) == _expected_lines()


def test_refuses_to_mix_runs_or_overwrite_without_force(caption_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    parts = out.with_name("out.jsonl.parts")
    parts.mkdir()
    (parts / "state.json").write_text(json.dumps({"chunk_size": 3}))
    with pytest.raises(UsageError, match="different .*chunk_size.*--force"):
        extract_nouns_from_file(caption_file, "text", out, LastWord(), chunk_size=4)
    extract_nouns_from_file(caption_file, "text", out, LastWord(), chunk_size=4, force=True)
    with pytest.raises(UsageError, match="already exists"):
        extract_nouns_from_file(caption_file, "text", out, LastWord(), chunk_size=4)
    with pytest.raises(UsageError, match="chunk-size"):
        extract_nouns_from_file(caption_file, "text", out, LastWord(), chunk_size=0, force=True)


def test_a_damaged_finished_chunk_is_an_error(caption_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    with pytest.raises(KeyboardInterrupt):
        extract_nouns_from_file(
            caption_file,
            "text",
            out,
            LastWord(),
            chunk_size=4,
            progress=lambda n: (_ for _ in ()).throw(KeyboardInterrupt),
        )
    (out.with_name("out.jsonl.parts") / "chunk-000000.jsonl").write_text('{"words": []}\n')
    with pytest.raises(InputFileError, match="1 lines, expected 4"):
        extract_nouns_from_file(caption_file, "text", out, LastWord(), chunk_size=4)


def test_strict_raises_on_a_bad_line(caption_file: Path, tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="caps.txt:4: empty caption"):
        extract_nouns_from_file(caption_file, "text", tmp_path / "o.jsonl", LastWord(), strict=True)


def test_run_tasks_checks_its_arguments() -> None:
    with pytest.raises(UsageError, match=">= 1"):
        list(run_tasks(len, [1], extractor=None, spec=None, workers=0))
    with pytest.raises(UsageError, match="ExtractorSpec"):
        list(run_tasks(len, [1], extractor=None, spec=None, workers=2))


def test_two_worker_processes_match_one_on_shards(tmp_path: Path) -> None:
    shards = write_toy_shards(tmp_path, "train2017", count=6, maxcount=2, seed=2)
    names = ("circle", "square", "triangle", "star", "grass", "sand", "water", "wall")
    spec = ExtractorSpec(lexicon=names)
    one = extract_nouns_over_shards(str(shards), LexiconExtractor(list(names)), "noun")
    sidecars = [nouns_sidecar_path(url).read_text() for url in list_shards(shards)]
    two = extract_nouns_over_shards(str(shards), spec.build(), "noun", force=True, workers=2, spec=spec)
    assert [nouns_sidecar_path(url).read_text() for url in list_shards(shards)] == sidecars
    assert (two.shards_done, two.captions, two.words) == (3, one.captions, one.words) and one.words > 0


@pytest.mark.stanza
def test_two_stanza_workers_match_one_on_chunks(tmp_path: Path, stanza_model_dir: Path, shared_data) -> None:
    annotations = json.loads((shared_data / "coco-captions-val2017" / "captions_val2017.json").read_text())
    sample = random.Random(5).sample(annotations["annotations"], 60)
    path = tmp_path / "coco.jsonl"
    path.write_text(
        "".join(json.dumps({"image_id": a["image_id"], "caption": a["caption"]}) + "\n" for a in sample)
    )
    spec = ExtractorSpec(model_dir=str(stanza_model_dir), offline=True)
    extractor = spec.build(num_threads=1)
    extract_nouns_from_file(path, "jsonl", tmp_path / "one.jsonl", extractor, chunk_size=15)
    summary = extract_nouns_from_file(
        path, "jsonl", tmp_path / "two.jsonl", extractor, chunk_size=15, workers=2, spec=spec
    )
    assert (tmp_path / "two.jsonl").read_bytes() == (tmp_path / "one.jsonl").read_bytes()
    lines = _read(tmp_path / "one.jsonl")
    assert [line["id"] for line in lines] == [a["image_id"] for a in sample]
    assert summary.chunks_done == 4 and summary.words > 60


def test_shards_count_bad_samples_and_strict_refuses_them(tmp_path: Path, monkeypatch) -> None:
    """Empty captions (kept as [] so captions still line up) and skipped samples are counted per shard;
    --strict refuses the shard before writing its sidecar. `prepare` drops empty captions, so a reader
    that yields them is faked here."""
    import openseg_cli.engine.nouns as nouns

    def fake_samples(url, skips):
        skips.count("corrupt sample", f"{url}: broken member")
        yield {"key": "000001", "meta": {"captions": ["A red car.", "   "]}}

    monkeypatch.setattr(nouns, "iter_samples", fake_samples)
    shards = write_toy_shards(tmp_path, "train2017", count=2, maxcount=2, seed=4)
    with pytest.raises(InputFileError, match=r"1 × corrupt sample, 1 × empty caption \(--strict\)"):
        extract_nouns_over_shards(str(shards), LastWord(), "noun", strict=True)
    assert not nouns_sidecar_path(list_shards(shards)[0]).exists()
    summary = extract_nouns_over_shards(str(shards), LastWord(), "noun")
    assert summary.skipped == {"corrupt sample": 1, "empty caption": 1}
    words = json.loads(nouns_sidecar_path(list_shards(shards)[0]).read_text())["words"]
    assert words == {"000001": [["car"], []]}


def test_finished_chunks_with_unicode_line_separators_read_back(tmp_path) -> None:
    """Chunks keep non-ASCII raw (ensure_ascii=False): U+2028, U+2029 and U+0085 inside a caption must not
    split its JSON line when a resumed run reads the chunk back."""
    import json

    from openseg_cli.engine.nouns import _read_part

    records = [
        {"line": 1, "caption": "a cat\u2028on a mat\u0085.", "words": ["cat"]},
        {"line": 2, "caption": "b\u2029"},
    ]
    part = tmp_path / "chunk-000000.jsonl"
    part.write_bytes("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode())
    assert _read_part(part, 2) == records
