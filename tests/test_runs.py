"""Run folders never overwrite an earlier run: runs/<command>/<name>, <name>2, <name>3…"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from openseg_cli.errors import UsageError
from openseg_cli.runs import new_run_dir, output_dir, run_owner


def test_run_folders_count_up(tmp_path) -> None:
    names = [new_run_dir("train", "toy", root=tmp_path).name for _ in range(3)]
    assert names == ["toy", "toy2", "toy3"]
    assert (tmp_path / "train" / "toy2").is_dir()


@pytest.mark.parametrize("name", ["../x", "a/b", ".hidden", "", "two words"])
def test_unsafe_run_names_are_refused(tmp_path, name: str) -> None:
    with pytest.raises(UsageError, match="run name"):
        new_run_dir("train", name, root=tmp_path)


def test_explicit_out_may_exist(tmp_path) -> None:
    target = tmp_path / "out"
    assert output_dir(target, "predict", "x") == target
    assert output_dir(target, "predict", "x") == target  # again: resumable jobs write into it


def test_a_run_folder_has_one_owner_at_a_time(tmp_path) -> None:
    with run_owner(tmp_path / "run", "train"):
        assert (tmp_path / "run" / ".owner.lock").read_text() == f"pid {os.getpid()}"
        with (
            pytest.raises(UsageError, match=rf"run is in use by another openseg train \(pid {os.getpid()}\)"),
            run_owner(tmp_path / "run", "train"),
        ):
            pass
    with run_owner(tmp_path / "run", "train"):  # freed when the owner is done: a rerun resumes
        pass


def test_train_into_a_folder_another_job_owns_is_one_clean_line(tmp_path) -> None:
    from tests.cli.helpers import assert_clean_error, run_main
    from tests.engine.helpers import write_toy_shards

    shards = [write_toy_shards(tmp_path, split, 4, maxcount=4) for split in ("train2017", "val2017")]
    recipe = Path(__file__).resolve().parents[1] / "recipes" / "toy.yaml"
    sets = ["--set", f"data.train_shards={shards[0]}", "--set", f"data.val_shards={shards[1]}"]
    with run_owner(tmp_path / "run", "train"):
        result = run_main("train", recipe, *sets, "--out", tmp_path / "run", "--max-steps", 1)
    assert_clean_error(result, "is in use by another openseg train", "pass another --out")
    assert not (tmp_path / "run" / "recipe.yaml").exists()
