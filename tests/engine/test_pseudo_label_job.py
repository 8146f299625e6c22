"""pseudo-label over shards: every image once, and an interrupted run resumes without re-running the
teacher on images already in finished output shards, ending byte-identical to an uninterrupted run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from openseg_cli.data.shards import list_shards
from openseg_cli.engine import pseudo_writer
from openseg_cli.engine.pseudo_label import PseudoLabelRequest, TeacherModule, run_pseudo_labelling
from openseg_cli.inference.pseudo import PseudoLabelThresholds
from tests.engine.helpers import tiny_recipe, write_tiny_checkpoint, write_toy_shards


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pseudo")
    shards = write_toy_shards(root, "train2017", count=10, maxcount=4, seed=4)
    ckpt = root / "teacher.pt"
    write_tiny_checkpoint(ckpt, tiny_recipe("data.crop_size=64"))
    return shards, ckpt


def _request(shards, ckpt) -> PseudoLabelRequest:
    # output shards of 4 samples; 0 thresholds keep every proposal
    return PseudoLabelRequest(ckpt, str(shards), PseudoLabelThresholds(0.0, 0.0, 8), maxcount=4)


def _count_teacher_calls(monkeypatch) -> list[int]:
    calls = [0]
    real = TeacherModule.teacher_masks

    def counting(*args, **kwargs):
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(TeacherModule, "teacher_masks", counting)
    return calls


def test_resume_skips_the_teacher_for_finished_shards(inputs, tmp_path, monkeypatch) -> None:
    shards, ckpt = inputs
    whole = tmp_path / "whole"
    manifest = run_pseudo_labelling(_request(shards, ckpt), whole)
    assert manifest["counts"]["written"] == 10

    # An interrupted run: the same output, but its last shard and progress record gone.
    part = tmp_path / "part"
    monkeypatch.setattr(pseudo_writer, "write_shards", _stop_after_one_shard(pseudo_writer.write_shards))
    with pytest.raises(RuntimeError, match="stopped"):
        run_pseudo_labelling(_request(shards, ckpt), part)
    monkeypatch.undo()
    assert not (part / "manifest.json").exists()  # nothing merged: the run did not finish
    finished = json.loads(next(part.glob("ranks/r000/*.progress.json")).read_text())["shards"]
    assert len(finished) == 1

    calls = _count_teacher_calls(monkeypatch)
    run_pseudo_labelling(_request(shards, ckpt), part)
    assert calls[0] == 10 - finished[0]["count"]  # the teacher ran only on images not yet written
    for a, b in zip(list_shards(whole), list_shards(part), strict=True):
        assert Path(a).read_bytes() == Path(b).read_bytes()


def _stop_after_one_shard(write_shards):
    """write_shards with maxcount 4 whose input fails right after the first shard is full."""

    def interrupted(samples, *args, **kwargs):
        def until_interrupt():
            for index, sample in enumerate(samples):
                if index == 5:
                    raise RuntimeError("stopped")
                yield sample

        return write_shards(until_interrupt(), *args, **kwargs)

    return interrupted


def test_a_shard_in_place_but_not_recorded_is_written_again(inputs, tmp_path, monkeypatch) -> None:
    """A kill between moving the first shard into place and recording it in progress.json leaves an
    unrecorded tar: the rerun replaces it instead of refusing the folder, and ends as a whole run."""
    shards, ckpt = inputs
    whole = tmp_path / "whole"
    run_pseudo_labelling(_request(shards, ckpt), whole)
    part = tmp_path / "part"
    monkeypatch.setattr(pseudo_writer, "write_shards", _stop_after_one_shard(pseudo_writer.write_shards))
    with pytest.raises(RuntimeError, match="stopped"):
        run_pseudo_labelling(_request(shards, ckpt), part)
    monkeypatch.undo()
    # What a kill right after the tar's os.replace leaves: the progress file (written before the first
    # tar) that does not record it yet.
    progress = next(part.glob("ranks/r000/*.progress.json"))
    progress.write_text(json.dumps({**json.loads(progress.read_text()), "shards": []}))
    assert len(list(part.glob("ranks/r000/*.tar"))) == 1

    calls = _count_teacher_calls(monkeypatch)
    run_pseudo_labelling(_request(shards, ckpt), part)
    assert calls[0] == 10  # nothing was recorded: every image is labelled again
    for a, b in zip(list_shards(whole), list_shards(part), strict=True):
        assert Path(a).read_bytes() == Path(b).read_bytes()


def test_an_out_folder_holding_other_shards_is_refused_untouched(inputs, tmp_path) -> None:
    """Without this job's record, a folder with shards or a manifest is someone else's data (or an older
    layout): writing there would overwrite its manifest and mix the shards."""
    from openseg_cli.errors import InputFileError

    shards, ckpt = inputs
    before = {p.name: p.read_bytes() for p in Path(shards).iterdir()}
    with pytest.raises(InputFileError, match="another run"):
        run_pseudo_labelling(_request(shards, ckpt), Path(shards))
    assert {p.name: p.read_bytes() for p in Path(shards).iterdir()} == before


def test_a_bad_teacher_leaves_no_record_so_the_fixed_rerun_goes_ahead(inputs, tmp_path) -> None:
    from openseg_cli.errors import CheckpointError

    shards, ckpt = inputs
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    out = tmp_path / "out"
    with pytest.raises(CheckpointError):
        run_pseudo_labelling(_request(shards, broken), out)
    assert not (out / pseudo_writer.JOB_FILE).exists()
    assert run_pseudo_labelling(_request(shards, ckpt), out)["counts"]["written"] == 10
