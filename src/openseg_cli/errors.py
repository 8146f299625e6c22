"""The one error family of openseg: every user-facing failure is an `OpenSegError`.

The CLI catches `OpenSegError`, prints its message as one line on stderr and exits with `exit_code`;
a traceback is shown only with `--debug`. Library code raises the most specific subclass.
"""

from __future__ import annotations


class OpenSegError(Exception):
    """Base class: a clear, one-line, user-facing message."""

    exit_code = 1


class UsageError(OpenSegError):
    """Bad arguments or option values (empty query list, bad flag combination)."""

    exit_code = 2


class RecipeError(OpenSegError):
    """A recipe that cannot be read: unknown key, wrong type, malformed YAML or override."""

    exit_code = 2


class InputFileError(OpenSegError):
    """An input file or folder that is missing, unreadable or malformed (images, JSON, shards)."""

    exit_code = 3


class CheckpointError(OpenSegError):
    """A file that is not an openseg checkpoint, or one that does not match the code."""

    exit_code = 3


class PretrainedWeightsError(OpenSegError):
    """Pretrained weights were asked for but cannot be had (offline, unknown tag, missing file)."""

    exit_code = 4


class StanzaModelsMissing(OpenSegError):
    """stanza models are not on disk and cannot be downloaded."""

    exit_code = 4
