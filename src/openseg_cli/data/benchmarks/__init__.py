"""Benchmark preparation: official downloads → the detectron2 layouts of MaskFormer/CAT-Seg/SAN.

`plan_*` list what a download holds (InputFileError when a folder is missing) and return a `Plan`;
`run_plan` converts it (resumable, counted skips, `strict`) and writes `openseg_prepare_<name>.json`.
Module docstrings give each benchmark's input and output layout.
"""

from openseg_cli.data.benchmarks.ade150 import plan_ade150
from openseg_cli.data.benchmarks.ade847 import plan_ade847
from openseg_cli.data.benchmarks.common import Item, LabelProblem, Plan, Spec
from openseg_cli.data.benchmarks.pascal_context import plan_pascal_context
from openseg_cli.data.benchmarks.runner import run_plan
from openseg_cli.data.benchmarks.voc import plan_voc20

__all__ = [
    "Item",
    "LabelProblem",
    "Plan",
    "Spec",
    "plan_ade150",
    "plan_ade847",
    "plan_pascal_context",
    "plan_voc20",
    "run_plan",
]
