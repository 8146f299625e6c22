"""`openseg extract-nouns INPUT`: the words of every caption (stanza POS tagging).

INPUT is a shard folder (sidecars beside the shards), a text file (one caption per line) or a JSONL
file (objects with a "caption"); `--gold-eval CONLLU` scores the noun filter instead.
"""

from __future__ import annotations

from pathlib import Path

import typer

from openseg_cli.cli.console import console, err_console, progress_bar

FORMAT_CHOICES = ("auto", "shards", "text", "jsonl")


def extract_nouns(
    source: str | None = typer.Argument(
        None,
        metavar="INPUT",
        help="Shard folder (or pattern) from `openseg prepare`, a .txt file (one caption per line) or a "
        '.jsonl file ({"caption": ...}, optional "image_id"/"id"; Localized Narratives records fit).',
    ),
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
        False, "--force", help="Redo work already done (finished shards, an existing --out file)."
    ),
    input_format: str = typer.Option(
        "auto",
        "--format",
        help="auto (.txt = text, .jsonl/.ndjson = jsonl, else shards) | shards | text | jsonl.",
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Output JSONL for text/JSONL input (default: INPUT + .words.jsonl)."
    ),
    workers: int = typer.Option(
        1, "--workers", help="Processes, each with its own stanza pipeline and 1 thread; same results."
    ),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda (stanza runs on the GPU)."),
    chunk_size: int = typer.Option(
        1000, "--chunk-size", help="Captions per resumable chunk of text/JSONL input."
    ),
    strict: bool = typer.Option(
        False,
        "--strict",
        help="Stop at the first bad input (empty caption, bad line) instead of skipping it.",
    ),
    gold_eval: Path | None = typer.Option(
        None, "--gold-eval", help="Score the noun filter on a UD CoNLL-U file (precision/recall) and stop."
    ),
    gold_limit: int | None = typer.Option(
        None, "--gold-limit", help="With --gold-eval: only the first N sentences."
    ),
) -> None:
    """Extract caption words: sidecars `<shard>.nouns.json` for shards, or one JSONL for caption files.

    Interrupted runs resume: finished shards and chunks are kept. Official stanza English models are
    downloaded on first use when online; offline, pass --model-dir. Bad lines are counted and skipped
    (with their line numbers) unless --strict.
    """
    from openseg_cli.errors import UsageError

    if device not in ("cpu", "cuda"):
        raise UsageError(f"--device must be cpu or cuda, got {device!r}")
    if input_format not in FORMAT_CHOICES:
        raise UsageError(f"--format must be one of {', '.join(FORMAT_CHOICES)}, got {input_format!r}")
    if workers < 1 or chunk_size < 1:
        raise UsageError(f"--workers and --chunk-size must be >= 1, got {workers} and {chunk_size}")
    if gold_eval is None and source is None:
        raise UsageError("give an INPUT (shards, .txt or .jsonl) or --gold-eval CONLLU")
    if gold_eval is not None:
        _gold(gold_eval, gold_limit, filter_name, model_dir, offline, device)
        return
    fmt = _resolve_format(source, input_format)
    if fmt == "shards":
        from openseg_cli.data.shards import list_shards

        list_shards(source)  # a clean error for a missing folder before the slow pipeline build
    elif not Path(source).is_file():
        from openseg_cli.errors import InputFileError

        raise InputFileError(f"caption file not found: {source}")
    extractor, spec = _build_extractor(filter_name, model_dir, offline, fallback_lexicon, device)
    console.print(f"extractor: {extractor.description}")
    options = dict(workers=workers, spec=spec, strict=strict, force=force)
    if fmt == "shards":
        _run_shards(source, extractor, filter_name, options)
    else:
        target = out if out is not None else _default_out(Path(source))
        _run_file(Path(source), fmt, target, extractor, chunk_size, options)


def _resolve_format(source: str, input_format: str) -> str:
    from openseg_cli.text.caption_files import detect_format

    if input_format != "auto":
        return input_format
    return detect_format(source) or "shards"


def _default_out(source: Path) -> Path:
    return source.with_name(source.name + ".words.jsonl")  # c.txt -> c.txt.words.jsonl: no clashes


def _run_shards(source: str, extractor, filter_name: str, options: dict) -> None:
    from openseg_cli.data.shards import list_shards
    from openseg_cli.engine.nouns import extract_nouns_over_shards

    with progress_bar("extract-nouns (shards)", len(list_shards(source))) as advance:
        summary = extract_nouns_over_shards(source, extractor, filter_name, progress=advance, **options)
    console.print(
        f"{summary.images} images, {summary.captions} captions, {summary.words} words "
        f"({len(summary.vocabulary)} distinct) in {summary.shards_done} shards "
        f"({summary.shards_reused} already done)"
    )
    for reason, n in sorted(summary.skipped.items()):
        console.print(f"  [yellow]skipped[/] {n} × {reason}")


def _run_file(source: Path, fmt: str, out: Path, extractor, chunk_size: int, options: dict) -> None:
    from openseg_cli.engine.nouns import extract_nouns_from_file

    with progress_bar("extract-nouns (chunks)", None) as advance:
        summary = extract_nouns_from_file(
            source, fmt, out, extractor, chunk_size=chunk_size, progress=advance, **options
        )
    console.print(
        f"{summary.captions} captions, {summary.words} words ({len(summary.vocabulary)} distinct) "
        f"in {summary.chunks} chunks ({summary.chunks_reused} already done) -> {summary.out}"
    )
    for line in summary.skips.describe():
        console.print(f"  [yellow]skipped[/] {line}")


def _gold(conllu: Path, limit: int | None, filter_name: str, model_dir, offline: bool, device: str) -> None:
    from openseg_cli.errors import UsageError
    from openseg_cli.text.gold import score_noun_filter
    from openseg_cli.text.nouns import NounExtractor

    if filter_name != "noun":
        raise UsageError(f"--gold-eval scores the noun filter only, not --filter {filter_name}")
    if limit is not None and limit < 1:
        raise UsageError(f"--gold-limit must be >= 1, got {limit}")
    extractor = NounExtractor.from_options(
        model_dir, offline=offline, use_gpu=device == "cuda", num_threads=1
    )
    console.print(f"extractor: {extractor.description}")
    score = score_noun_filter(extractor, conllu, limit=limit)
    console.print(
        f"noun filter on {conllu} ({score['sentences']} sentences): precision {score['precision']:.3f}, "
        f"recall {score['recall']:.3f}, F1 {score['f1']:.3f} (TP {score['tp']}, FP {score['fp']}, "
        f"FN {score['fn']})"
    )


def _build_extractor(
    filter_name: str, model_dir: Path | None, offline: bool, fallback: Path | None, device: str
):
    """(extractor, spec to rebuild it in worker processes); the lexicon fallback is said out loud."""
    from openseg_cli.engine.nouns_parallel import ExtractorSpec
    from openseg_cli.errors import StanzaModelsMissing, UsageError
    from openseg_cli.text.queries import read_class_file

    spec = ExtractorSpec(
        filter=filter_name,
        model_dir=str(model_dir) if model_dir is not None else None,
        offline=offline,
        use_gpu=device == "cuda",
    )
    try:
        # one torch thread: on small machines stanza stalled for minutes with two (measured in text/nouns.py)
        return spec.build(num_threads=1), spec
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
        spec = ExtractorSpec(filter=filter_name, lexicon=tuple(vocabulary))
        return spec.build(), spec


def register(app: typer.Typer) -> None:
    app.command("extract-nouns")(extract_nouns)
