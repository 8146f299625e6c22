"""Run folders never overwrite an earlier run: runs/<command>/<name>, <name>2, <name>3…"""

from __future__ import annotations

import pytest

from openseg_cli.errors import UsageError
from openseg_cli.runs import new_run_dir, output_dir


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
