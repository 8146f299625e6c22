"""Build the stanza English pipeline (tokenize, mwt, pos, lemma) used to extract caption words.

Two on-disk layouts are accepted:

* **official** (default): stanza's own resources folder (``resources.json`` + ``en/...``), by default
  stanza's ``DEFAULT_MODEL_DIR`` (``$STANZA_RESOURCES_DIR`` or ``~/.cache/stanza/<version>/resources``),
  or ``model_dir``. Online, missing models are downloaded on first use (``REUSE_RESOURCES``: an existing
  ``resources.json`` is trusted, no update check). Processors ``tokenize,mwt,pos,lemma``: English
  tokens such as "don't" are multi-word tokens, so stanza needs ``mwt`` to split them into words.
* **explicit files**: ``model_dir`` holds ``en_tokenize.pt`` and ``en_pos.pt`` (optionally ``en_mwt.pt``,
  ``en_lemma.pt`` and ``stub_resources.json``), e.g. ``../shared/models/stanza-en-ewt-dev``. It is built
  without any resources download (``allow_unknown_language`` + explicit model paths). Without
  ``en_lemma.pt`` there is no lemma processor and `NounExtractor` lemmatises nouns with
  `openseg_cli.text.lemmatizer` (stanza's ``lemma_use_identity`` would keep "horses" as is).

stanza is imported lazily: importing this module costs nothing.
"""

from __future__ import annotations

import atexit
import functools
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from openseg_cli.errors import StanzaModelsMissing

if TYPE_CHECKING:
    import stanza

EXPLICIT_REQUIRED = ("en_tokenize.pt", "en_pos.pt")
OFFICIAL_PROCESSORS = "tokenize,mwt,pos,lemma"
DOWNLOAD_HINT = (
    "get them with `python -c \"import stanza; stanza.download('en')\"` on a machine with internet, "
    "then copy the folder it fills (stanza's resources dir) here and pass --model-dir DIR"
)


def default_model_dir() -> Path:
    """stanza's default resources folder (honours ``$STANZA_RESOURCES_DIR``)."""
    from stanza.resources.common import DEFAULT_MODEL_DIR

    return Path(DEFAULT_MODEL_DIR)


def build_stanza_pipeline(
    model_dir: str | os.PathLike[str] | None = None, offline: bool = False, use_gpu: bool = False
) -> stanza.Pipeline:
    """Return a ready stanza English pipeline from `model_dir` (or stanza's default folder).

    `offline=True` never touches the network and fails at once when models are missing.
    Raises `StanzaModelsMissing` (one line: where it looked, how to get models) when the models are not
    on disk and cannot be downloaded (offline, no network, failed download, half an explicit layout).
    """
    directory = Path(model_dir).expanduser() if model_dir is not None else default_model_dir()
    if any((directory / name).is_file() for name in EXPLICIT_REQUIRED):
        return _build_from_files(directory, use_gpu)
    return _build_official(directory, offline, use_gpu)


def _build_official(directory: Path, offline: bool, use_gpu: bool) -> stanza.Pipeline:
    """Official layout; downloads missing English models unless `offline`."""
    import stanza
    from stanza.pipeline.core import DownloadMethod

    if offline and not (directory / "resources.json").is_file():
        # Checked up front so offline mode never reaches stanza's download code.
        raise StanzaModelsMissing(
            f"no stanza English models in {directory} (offline, so nothing is downloaded); {DOWNLOAD_HINT}"
        )
    method = None if offline else DownloadMethod.REUSE_RESOURCES
    try:
        return stanza.Pipeline(
            lang="en",
            dir=str(directory),
            processors=OFFICIAL_PROCESSORS,
            download_method=method,
            use_gpu=use_gpu,
            logging_level="WARN",
        )
    # OSError covers missing files (FileNotFoundError and stanza's subclasses) and network failures
    # (requests and huggingface_hub errors derive from OSError); ValueError = md5 mismatch or a
    # resources.json without English. Anything else is a bug and propagates.
    except (OSError, ValueError) as err:
        how = "offline" if offline else "download failed"
        reason = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
        raise StanzaModelsMissing(
            f"stanza English models not usable in {directory} ({how}: {reason}); {DOWNLOAD_HINT}"
        ) from err


def _build_from_files(directory: Path, use_gpu: bool) -> stanza.Pipeline:
    """Explicit-files layout (en_tokenize.pt + en_pos.pt [+ en_mwt.pt, en_lemma.pt]); never downloads."""
    import stanza

    missing = [name for name in EXPLICIT_REQUIRED if not (directory / name).is_file()]
    if missing:
        raise StanzaModelsMissing(
            f"{directory} has only part of the explicit stanza layout (missing {', '.join(missing)}); "
            f"it needs {' and '.join(EXPLICIT_REQUIRED)}, or {DOWNLOAD_HINT}"
        )
    processors = ["tokenize"]
    paths = {"tokenize_model_path": str(directory / "en_tokenize.pt")}
    for name in ("mwt", "pos", "lemma"):
        path = directory / f"en_{name}.pt"
        if path.is_file():
            processors.append(name)
            paths[f"{name}_model_path"] = str(path)
    stub = directory / "stub_resources.json"
    try:
        return stanza.Pipeline(
            lang="en",
            dir=str(directory),
            processors=",".join(processors),
            download_method=None,
            resources_filepath=str(stub if stub.is_file() else _empty_resources_file()),
            # "en" is absent from the stub resources on purpose: no download, explicit paths only.
            allow_unknown_language=True,
            use_gpu=use_gpu,
            logging_level="ERROR",  # hides the expected "unsupported language" warning
            **paths,
        )
    except (OSError, ValueError) as err:
        raise StanzaModelsMissing(
            f"stanza could not load the model files in {directory} ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:160] if str(err) else ''}); they must match stanza's version"
        ) from err


@functools.lru_cache(maxsize=1)
def _empty_resources_file() -> Path:
    """A temporary ``{}`` resources file for explicit layouts that ship none (removed at exit)."""
    fd, name = tempfile.mkstemp(prefix="openseg-stanza-", suffix=".json")
    with os.fdopen(fd, "w") as handle:
        handle.write("{}")
    atexit.register(lambda: Path(name).unlink(missing_ok=True))
    return Path(name)


def has_lemma_model(pipeline: stanza.Pipeline) -> bool:
    """True when the pipeline runs stanza's lemmatiser (official models or ``en_lemma.pt``)."""
    return "lemma" in pipeline.processors


def describe_pipeline(pipeline: stanza.Pipeline) -> str:
    """One line naming stanza's version, the processors and where the models came from."""
    import stanza

    return f"stanza {stanza.__version__} ({','.join(pipeline.processors)}) from {pipeline.dir}"
