"""Gold part-of-speech data (UD CoNLL-U) and a precision/recall score for the ``noun`` filter.

`score_noun_filter` measures how well an extractor finds the nouns of a sentence, per sentence as sets:
1. each sentence's ``# text`` (the raw sentence) is given to ``extractor.extract`` -> predicted words P;
2. gold words G = the forms of the syntactic words tagged NOUN (plus PROPN when the extractor counts
   proper nouns), lower-cased, kept only if alphabetic (same rule as the extractor), then normalised like
   the extractor's output: with ``lemmatizer == "rules"`` or ``"stanza"`` both P and G go through
   `lemmatize_noun` (so stanza's lemma conventions, e.g. "people", and the rules meet on the same
   singular); with ``"none"`` both stay surface forms;
3. micro-averaged over sentences: TP = Σ|P∩G|, FP = Σ|P−G|, FN = Σ|G−P|; precision = TP/(TP+FP),
   recall = TP/(TP+FN), f1 = harmonic mean (0.0 when undefined).
Sets, not token counts: a noun said twice in a sentence counts once, as in the extractor's output.
The extractor's own tokenisation and sentence splitting are part of what is measured.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

from openseg_cli.errors import InputFileError
from openseg_cli.text.extractor import WordExtractor, is_word
from openseg_cli.text.lemmatizer import lemmatize_noun


def iter_conllu(path: str | os.PathLike[str]) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """Yield ``(text, [(form, upos), ...])`` per sentence of a CoNLL-U file.

    Syntactic words only: multi-word-token ranges ("3-4") and empty nodes ("8.1") are skipped. A sentence
    without a ``# text`` comment gets its forms joined by spaces. Raises `InputFileError` for a missing
    or unreadable file, or a token line that does not have 10 tab-separated columns.
    """
    file = Path(path)
    try:
        handle = file.open(encoding="utf-8")
    except OSError as err:
        raise InputFileError(f"cannot read CoNLL-U file {file}: {err.__class__.__name__}: {err}") from err
    with handle:
        text: str | None = None
        words: list[tuple[str, str]] = []
        for number, line in enumerate(handle, start=1):
            line = line.rstrip("\n")
            if not line.strip():
                if words:
                    yield (text if text is not None else " ".join(f for f, _ in words)), words
                text, words = None, []
            elif line.startswith("#"):
                if line.startswith("# text ="):
                    text = line[len("# text =") :].strip()
            else:
                columns = line.split("\t")
                if len(columns) != 10:
                    raise InputFileError(
                        f"{file}:{number}: expected 10 tab-separated columns, got {len(columns)}"
                    )
                if columns[0].isdigit():  # skip "3-4" ranges and "8.1" empty nodes
                    words.append((columns[1], columns[3]))
        if words:  # file without a final blank line
            yield (text if text is not None else " ".join(f for f, _ in words)), words


def score_noun_filter(
    extractor: WordExtractor, conllu_path: str | os.PathLike[str], limit: int | None = None
) -> dict[str, float]:
    """Precision, recall and F1 of `extractor` against gold NOUN words (method in the module docstring).

    `limit` = number of sentences read from the start of the file (None = all). Returns
    ``dict(precision, recall, f1, sentences, tp, fp, fn)``. Raises `InputFileError` like `iter_conllu`.
    """
    texts, gold = [], []
    tags = {"NOUN", "PROPN"} if getattr(extractor, "include_propn", False) else {"NOUN"}
    normalise = _normaliser(getattr(extractor, "lemmatizer", "rules"))
    for index, (text, words) in enumerate(iter_conllu(conllu_path)):
        if limit is not None and index >= limit:
            break
        texts.append(text)
        gold.append({normalise(form) for form, upos in words if upos in tags and is_word(form)})
    tp = fp = fn = 0
    for predicted, expected in zip(extractor.extract(texts), gold, strict=True):
        found = {normalise(word) for word in predicted}
        tp += len(found & expected)
        fp += len(found - expected)
        fn += len(expected - found)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "sentences": len(texts),
        "tp": tp,
        "fp": fp,
        "fn": fn,
    }


def _normaliser(lemmatizer: str) -> Callable[[str], str]:
    """The word normalisation shared by predictions and gold (see the module docstring)."""
    if lemmatizer == "none":
        return str.lower
    return lemmatize_noun  # lower-cases too
