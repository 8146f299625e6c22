"""Run a benchmark `Plan`: convert item by item, count skips, honour `--strict`, write the JSON report.

The report `openseg_prepare_<name>.json` sits beside the prepared labels (the parent of the label
folder) and says what the labels are (convention, ignore value, classes, dtype) and what went wrong.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import asdict

from openseg_cli.atomic import atomic_write_json
from openseg_cli.data.benchmarks.common import LabelProblem, Plan
from openseg_cli.data.skips import SkipCounter
from openseg_cli.errors import InputFileError

MAX_LISTED_PROBLEMS = 200  # the report lists this many problems in full; all are counted


class _Problems:
    """Collects problems; with `strict` the first one raises InputFileError instead."""

    def __init__(self, name: str, strict: bool) -> None:
        self.name, self.strict = name, strict
        self.skips = SkipCounter(f"prepare {name}", max_consecutive=10**9)
        self.listed: list[dict[str, str]] = []

    def add(self, reason: str, key: str, detail: str) -> None:
        if self.strict:
            raise InputFileError(f"prepare {self.name}: {reason}: {key}: {detail} (--strict)")
        self.skips.count(reason, f"{key}: {detail}")
        if len(self.listed) < MAX_LISTED_PROBLEMS:
            self.listed.append({"reason": reason, "key": key, "detail": detail})


def run_plan(
    plan: Plan,
    *,
    strict: bool = False,
    progress: Callable[[int], None] | None = None,
    command: Sequence[str] | None = None,
) -> dict:
    """Prepare every item of `plan`; return the report (also written to `plan.report_path`).

    Outputs already there and correct are kept (`already_prepared`), so an interrupted run resumes.
    Raises InputFileError on the first problem with `strict`, and when no item could be prepared.
    """
    problems = _Problems(plan.spec.name, strict)
    for reason, key, detail in plan.problems:
        problems.add(reason, key, detail)
    written = already = 0
    for item in plan.items:
        try:
            if plan.is_done(item):
                already += 1
            else:
                plan.process(item)
                written += 1
            problems.skips.ok()
        except LabelProblem as problem:
            problems.add(problem.reason, item.key, problem.detail)
        if progress is not None:
            progress(1)
    report = _report(plan, problems, written, already, command)
    atomic_write_json(plan.report_path, report)
    if written + already == 0:
        raise InputFileError(
            f"prepare {plan.spec.name}: no sample could be prepared "
            f"({problems.skips.total} problems; see {plan.report_path})"
        )
    return report


def _report(plan: Plan, problems: _Problems, written: int, already: int, command) -> dict:
    spec = asdict(plan.spec)
    counts = {
        **plan.counts,
        "prepared": written + already,
        "written": written,
        "already_prepared": already,
        "skipped": problems.skips.total,
        "skipped_by_reason": dict(sorted(problems.skips.reasons.items())),
    }
    return {
        "benchmark": spec.pop("name"),
        **spec,
        "out_root": str(plan.out_root),
        "inputs": plan.inputs,
        "counts": counts,
        "problems": problems.listed,
        "problems_listed": f"{len(problems.listed)} of {problems.skips.total}",
        **plan.extra,
        "command": list(command) if command is not None else None,
        "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
