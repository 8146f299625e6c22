"""`openseg extract-nouns SHARDS`: the words of every caption (stanza POS tagging) as shard sidecars."""

from __future__ import annotations

from pathlib import Path

import typer

from openseg_cli.cli.console import console, err_console, progress_bar


def extract_nouns(
    shards: str = typer.Argument(..., help="Shard folder (or pattern) written by `openseg prepare`."),
    filter_name: str = typer.Option(
        "noun", "--filter", help="Words kept (paper Table 5): noun | noun_adj_verb | all."
    ),
    model_dir: Path | None = typer.Option(
        None,
        "--model-dir",
        help="stanza model folder (official layout, or en_tokenize.pt + en_pos.pt files).",
    ),
    offline: bool = typer.Option(
        False, "--offline", help="Never download stanza models; use --model-dir only."
    ),
    fallback_lexicon: Path | None = typer.Option(
        None,
        "--fallback-lexicon",
        help="Class file whose names are matched in captions when stanza models cannot be had (said loudly).",
    ),
    force: bool = typer.Option(
        False, "--force", help="Redo shards that already have nouns from this extractor."
    ),
) -> None:
    """Writes `<shard>.nouns.json` beside each shard: per image, the words of each caption.

    Interrupted runs resume: finished shards are kept. Official stanza English models are downloaded on
    first use when online; offline, pass --model-dir.
    """
    from openseg_cli.data.shards import list_shards
    from openseg_cli.engine.nouns import extract_nouns_over_shards

    urls = list_shards(shards)
    extractor = _build_extractor(filter_name, model_dir, offline, fallback_lexicon)
    console.print(f"extractor: {extractor.description}")
    with progress_bar("extract-nouns (shards)", len(urls)) as advance:
        summary = extract_nouns_over_shards(shards, extractor, filter_name, force=force, progress=advance)
    console.print(
        f"{summary.images} images, {summary.captions} captions, {summary.words} words "
        f"({len(summary.vocabulary)} distinct) in {summary.shards_done} shards "
        f"({summary.shards_reused} already done)"
    )
    for reason, n in sorted(summary.skipped.items()):
        console.print(f"  [yellow]skipped[/] {n} × {reason}")


def _build_extractor(filter_name: str, model_dir: Path | None, offline: bool, fallback: Path | None):
    from openseg_cli.errors import StanzaModelsMissing, UsageError
    from openseg_cli.text.lexicon import LexiconExtractor
    from openseg_cli.text.nouns import NounExtractor
    from openseg_cli.text.queries import read_class_file

    try:
        # one torch thread: on small machines stanza stalled for minutes with two (measured in text/nouns.py)
        return NounExtractor.from_options(model_dir, offline=offline, filter=filter_name, num_threads=1)
    except StanzaModelsMissing as err:
        if fallback is None:
            raise
        if filter_name != "noun":
            raise UsageError(f"the lexicon fallback only finds nouns, not --filter {filter_name}") from None
        vocabulary = [name for synonyms in read_class_file(fallback) for name in synonyms]
        err_console.print(f"[bold yellow]warning:[/] stanza unavailable: {err}")
        err_console.print(
            f"[bold yellow]warning:[/] extracting words by matching the {len(vocabulary)} names of "
            f"{fallback} "
            f"in captions instead of POS tagging: {', '.join(vocabulary)}"
        )
        return LexiconExtractor(vocabulary)


def register(app: typer.Typer) -> None:
    app.command("extract-nouns")(extract_nouns)
