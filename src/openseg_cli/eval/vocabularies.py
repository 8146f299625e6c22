"""The class lists of the open-vocabulary benchmarks, shipped in `openseg_cli/assets/vocabularies`.

Each list is in label order (class i = label i of the prepared maps) and each class is a list of
synonyms (scored as the max over them). Origin of every list: the README in that folder.
"""

from __future__ import annotations

from importlib import resources

from openseg_cli.errors import UsageError
from openseg_cli.text.queries import read_class_file

# name → number of classes (checked on every read: a damaged install fails loudly, not with a wrong mIoU)
VOCABULARY_SIZES = {
    "ade150": 150,
    "ade847": 847,
    "pc59": 59,
    "pc459": 459,
    "voc20": 20,
    "coco_stuff171": 171,
}


def list_vocabularies() -> list[str]:
    """Names of the built-in vocabularies, sorted."""
    return sorted(VOCABULARY_SIZES)


def benchmark_classes(name: str) -> list[list[str]]:
    """The built-in vocabulary `name` → C classes, each a list of synonyms (first = display name).

    Raises UsageError for an unknown name (listing the known ones).
    """
    if name not in VOCABULARY_SIZES:
        raise UsageError(f"unknown vocabulary {name!r}; choose {' | '.join(list_vocabularies())}")
    resource = resources.files("openseg_cli").joinpath(f"assets/vocabularies/{name}.txt")
    with resources.as_file(resource) as path:
        classes = read_class_file(path)
    if len(classes) != VOCABULARY_SIZES[name]:
        raise UsageError(
            f"built-in vocabulary {name} has {len(classes)} classes, expected {VOCABULARY_SIZES[name]}"
        )
    return classes
