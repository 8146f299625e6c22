"""Class groups for open-vocabulary evaluation: mIoU per group (seen / caption_only / unseen …) and hIoU.

The file of `evaluate --class-groups FILE` is a JSON object mapping a group name to class names:
    {"seen": ["circle", "grass"], "caption_only": ["ring"], "unseen": ["heart", "wood"]}
A listed name matches every class of the evaluation vocabulary that has it among its names/synonyms
(case-insensitive; surrounding and repeated whitespace ignored), so a benchmark list that names two
classes alike (ADE-847's two "bag"s) puts both in the group. Vocabulary classes that no group lists form
the group `ungrouped`, present only when there are any (the name is reserved). Group names become metric
keys (`val/miou_<group>_<benchmark>`), so they are letters, digits, `_` and `-`.

Figures (fractions in [0, 1]; None = undefined):
- group mIoU: the mean of the group's per-class IoUs over the classes whose IoU is defined, which is the
  rule of the overall mIoU (`eval.metrics`: a class counts when it has a ground-truth pixel; its IoU is
  None otherwise); None when no class of the group has a defined IoU. A group holding every class has
  the overall mIoU.
- hIoU: the harmonic mean 2·s·u / (s + u) of the `seen` and `unseen` group mIoUs (0 when s + u = 0), the
  figure of the zero-shot segmentation literature (ZS3Net, SPNet, ZegFormer); only when both groups
  exist, and None when either group mIoU is undefined.

Pure python: the engines, `eval.report` and `eval.html_report` all read the figures made here.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openseg_cli.errors import InputFileError

UNGROUPED = "ungrouped"
SEEN, UNSEEN = "seen", "unseen"
_GROUP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


@dataclass(frozen=True)
class ClassGroups:
    """Which group each class of a C-class vocabulary is in.

    source: the file the groups came from (shown in messages and metrics.json's meta).
    names: group names in file order, then `UNGROUPED` when some class is in no listed group.
    of_class: C group names, one per vocabulary class (in label order).
    class_names: C display names (a class's first name).
    """

    source: str
    names: tuple[str, ...]
    of_class: tuple[str, ...]
    class_names: tuple[str, ...]

    def members(self, group: str) -> list[int]:
        """Class indices of `group`, ascending."""
        return [index for index, name in enumerate(self.of_class) if name == group]


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`json.loads` object hook: a key given twice is an error (plain JSON keeps the last silently)."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


def read_class_groups(path: str | Path, classes: Sequence[Sequence[str]]) -> ClassGroups:
    """Read a class-groups JSON file (module doc) against the evaluation vocabulary `classes` (C synonym
    lists, label order).

    Raises InputFileError (one line naming the file) for an unreadable file, text that is not JSON, a
    group given twice, and every error of `parse_class_groups`.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InputFileError(f"cannot read class groups file {file}: {type(err).__name__}: {err}") from None
    try:
        data = json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as err:
        raise InputFileError(f"class groups file {file} is not valid JSON: {err}") from None
    except _DuplicateKey as err:
        raise InputFileError(f"class groups file {file}: key {err.key!r} is given twice") from None
    return parse_class_groups(data, classes, str(file))


def _normalised(name: str) -> str:
    return " ".join(name.split()).casefold()


def parse_class_groups(data: Any, classes: Sequence[Sequence[str]], source: str) -> ClassGroups:
    """The decoded JSON `data` → ClassGroups over `classes` (C synonym lists); `source` names the file in
    messages.

    Raises InputFileError, one line naming `source` and the offending group or name, for: data that is not
    an object of string lists, no groups, a group name that is not a metric-key word or is `ungrouped`,
    an empty group, a name matching no class (close matches suggested), a class in two groups.
    """
    where = f"class groups file {source}"
    if not isinstance(data, dict):
        raise InputFileError(
            f'{where} must hold a JSON object {{"group": ["class", ...]}}, found {type(data).__name__}'
        )
    if not data:
        raise InputFileError(f"{where} holds no groups")
    index: dict[str, list[int]] = {}
    for number, synonyms in enumerate(classes):
        for name in synonyms:
            bucket = index.setdefault(_normalised(name), [])
            if number not in bucket:
                bucket.append(number)
    owner: list[str | None] = [None] * len(classes)
    for group, names in data.items():
        _check_group(where, group, names)
        for name in names:
            matched = index.get(_normalised(name))
            if not matched:
                raise InputFileError(f"{where}: group {group!r} lists {name!r}, {_no_class(name, index)}")
            for number in matched:
                if owner[number] not in (None, group):
                    display = classes[number][0]
                    alias = "" if _normalised(name) == _normalised(display) else f" (as {name!r})"
                    raise InputFileError(
                        f"{where}: class {display!r} is in group {owner[number]!r} and in group "
                        f"{group!r}{alias}"
                    )
                owner[number] = group
    return ClassGroups(
        source=source,
        names=tuple(data) + ((UNGROUPED,) if None in owner else ()),
        of_class=tuple(group or UNGROUPED for group in owner),
        class_names=tuple(str(synonyms[0]) for synonyms in classes),
    )


def _check_group(where: str, group: str, names: Any) -> None:
    if not _GROUP_NAME.fullmatch(group):
        raise InputFileError(
            f"{where}: group name {group!r} must be letters, digits, '_' or '-' (it becomes a metric key)"
        )
    if group == UNGROUPED:
        raise InputFileError(f"{where}: group name {UNGROUPED!r} is reserved for the classes no group lists")
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise InputFileError(f"{where}: group {group!r} must be a list of class names (strings)")
    if not names:
        raise InputFileError(f"{where}: group {group!r} is empty")


def _no_class(name: str, index: dict[str, list[int]]) -> str:
    close = difflib.get_close_matches(_normalised(name), list(index), n=3)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return f"which is no class of the evaluation vocabulary{hint}"


def group_miou(per_class_iou: Sequence[float | None], members: Sequence[int]) -> float | None:
    """Mean IoU of the `members` whose IoU is defined (not None, not NaN); None when none is."""
    defined = [float(per_class_iou[i]) for i in members if _defined(per_class_iou[i])]
    return math.fsum(defined) / len(defined) if defined else None


def _defined(value: float | None) -> bool:
    return value is not None and not math.isnan(float(value))


def harmonic_iou(seen: float | None, unseen: float | None) -> float | None:
    """hIoU = 2·s·u / (s + u); 0 when s + u = 0; None when either is undefined."""
    if seen is None or unseen is None:
        return None
    total = seen + unseen
    return 2 * seen * unseen / total if total > 0 else 0.0


def group_figures(per_class_iou: Sequence[float | None], groups: ClassGroups) -> dict[str, Any]:
    """Per-class IoUs (C values, None = undefined) → the keys the metrics dict gains:

    "groups": {group: {"miou": float | None, "classes": [display names], "classes_evaluated": int}} in
    `groups.names` order; "hiou": float | None, only when groups `seen` and `unseen` both exist;
    "per_class_group": C group names.
    Raises ValueError when the IoU count differs from the groups' class count.
    """
    if len(per_class_iou) != len(groups.of_class):
        raise ValueError(f"{len(per_class_iou)} per-class IoUs but {len(groups.of_class)} grouped classes")
    figures: dict[str, Any] = {"groups": {}}
    for name in groups.names:
        members = groups.members(name)
        figures["groups"][name] = {
            "miou": group_miou(per_class_iou, members),
            "classes": [groups.class_names[i] for i in members],
            "classes_evaluated": sum(_defined(per_class_iou[i]) for i in members),
        }
    if SEEN in groups.names and UNSEEN in groups.names:
        figures["hiou"] = harmonic_iou(figures["groups"][SEEN]["miou"], figures["groups"][UNSEEN]["miou"])
    figures["per_class_group"] = list(groups.of_class)
    return figures


def add_group_figures(metrics: dict[str, Any], groups: ClassGroups | None) -> dict[str, Any]:
    """`metrics` (from `metrics_from_confusion`) with `group_figures` added; unchanged when no groups."""
    if groups is None:
        return metrics
    return {**metrics, **group_figures(metrics["per_class_iou"], groups)}
