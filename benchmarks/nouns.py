"""Noun extraction with stanza: openseg's bulk `extract(captions)` vs one stanza call per caption.

Three competitors run on the same real COCO val2017 captions (the first N, file order), interleaved
repeat by repeat, all with the offline stanza model, filter "noun" and 1 torch thread (as
`openseg extract-nouns` builds it), sharing one pipeline:
- "one call per caption": `extract([caption])` per caption, no de-duplication, no cache (the baseline);
- "stanza bulk only": one `extract(captions)` with de-duplication off: every caption tagged;
- "bulk + dedup + cache": the default extractor: each distinct normalised caption tagged once, in bulk;
  its cache is cleared before every repeat, so no repeat profits from an earlier one.
`speedup` = default (bulk + dedup + cache) captions per CPU second / baseline captions per CPU second
(target >= 8, the project's issue); `bulk_speedup` is stanza's bulk path alone. All three must give
identical words; a difference is printed and the script exits 1. Without the model or the captions it
says so and exits 0.

Run: .venv/bin/python benchmarks/nouns.py [--json PATH] [--captions-count 2000] [--repeats 3]
     [--model-dir ../shared/models/stanza-en-ewt-dev]
     [--captions ../shared/data/coco-captions-val2017/captions_val2017.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from _common import SHARED, Runs, console, machine, measure, results_table, targets_table, write_json

SPEEDUP_TARGET = 8.0
DEFAULT_MODEL_DIR = Path(os.environ.get("OPENSEG_STANZA_DIR", SHARED / "models" / "stanza-en-ewt-dev"))
DEFAULT_CAPTIONS = SHARED / "data" / "coco-captions-val2017" / "captions_val2017.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", help="write the figures to this JSON file")
    p.add_argument("--captions-count", type=int, default=2000, help="first N captions, default 2000")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per competitor (median reported)")
    p.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR, help="offline stanza model folder")
    p.add_argument("--captions", type=Path, default=DEFAULT_CAPTIONS, help="COCO captions JSON")
    args = p.parse_args(argv)
    if args.captions_count < 1 or args.repeats < 1:
        p.error("--captions-count and --repeats must be >= 1")
    return args


def missing_inputs(args: argparse.Namespace) -> str | None:
    if not (args.model_dir / "en_tokenize.pt").is_file() or not (args.model_dir / "en_pos.pt").is_file():
        return f"no stanza model (en_tokenize.pt + en_pos.pt) in {args.model_dir}: pass --model-dir"
    if not args.captions.is_file():
        return f"no captions file at {args.captions}: pass --captions"
    return None


def load_captions(path: Path, count: int) -> list[str]:
    """The first `count` captions of a COCO captions JSON, in file order."""
    return [a["caption"] for a in json.loads(path.read_text())["annotations"][:count]]


def run(args: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    from openseg_cli.text.extractor import normalize_caption
    from openseg_cli.text.nouns import NounExtractor

    logging.getLogger("stanza").setLevel(logging.WARNING)
    captions = load_captions(args.captions, args.captions_count)
    default = NounExtractor.from_options(args.model_dir, offline=True, filter="noun", num_threads=1)
    bulk_only = NounExtractor(default.pipeline, "noun", num_threads=1, deduplicate=False)
    baseline = NounExtractor(default.pipeline, "noun", num_threads=1, cache_size=0, deduplicate=False)
    outputs: dict[str, list[list[str]]] = {}

    def full() -> int:
        default.clear_cache()  # cold every repeat: only repeats within these captions are saved
        outputs["bulk + dedup + cache"] = default.extract(captions)
        return len(captions)

    def stanza_bulk() -> int:
        outputs["stanza bulk only"] = bulk_only.extract(captions)
        return len(captions)

    def one_by_one() -> int:
        outputs["one call per caption"] = [baseline.extract([c])[0] for c in captions]
        return len(captions)

    competitors = [
        (Runs("bulk + dedup + cache", len(captions)), full),
        (Runs("stanza bulk only", len(captions)), stanza_bulk),
        (Runs("one call per caption", len(captions)), one_by_one),
    ]
    bulk_only.extract(captions[:64])  # warm-up: lazy imports, allocator, first-call paths
    for c in captions[:16]:
        baseline.extract([c])
    for _ in range(args.repeats):
        for runs, fn in competitors:
            measure(runs, fn)
    distinct = len({normalize_caption(c) for c in captions} - {""})
    return summarise(args, [r for r, _ in competitors], outputs, captions, distinct, default.description)


def summarise(
    args: argparse.Namespace,
    runs: list[Runs],
    outputs: dict[str, list[list[str]]],
    captions: list[str],
    distinct: int,
    description: str,
) -> tuple[dict[str, Any], bool]:
    full, bulk, single = runs
    speedup = full.rate_per_core / single.rate_per_core
    bulk_speedup = bulk.rate_per_core / single.rate_per_core
    wall_speedup = full.rate / single.rate
    reference = outputs["one call per caption"]
    diffs = sorted(
        {
            i
            for name, words in outputs.items()
            for i, (a, b) in enumerate(zip(words, reference, strict=True))
            if a != b
        }
    )
    repeats = 1 - distinct / len(captions)
    title = f"stanza noun extraction, first {len(captions)} COCO val2017 captions, median of {args.repeats}"
    console.print(results_table(title, runs, "captions", reference=single))
    console.print(
        targets_table(
            [
                ("speedup", "bulk + dedup + cache / one call per caption", speedup, SPEEDUP_TARGET),
                ("bulk_speedup", "stanza bulk only / one call per caption", bulk_speedup, SPEEDUP_TARGET),
            ]
        )
    )
    console.print(f"pipeline: {description}")
    console.print(
        f"{distinct} distinct normalised captions of {len(captions)} ({repeats:.1%} repeats): the most "
        f"de-duplication can save here; wall-clock speedup {wall_speedup:.2f}x (ratios use CPU seconds)"
    )
    if diffs:
        console.print(f"[red]words differ for {len(diffs)} of {len(captions)} captions[/red], e.g.:")
        for i in diffs[:5]:
            console.print(f"  {captions[i]!r}: " + "; ".join(f"{k} {v[i]}" for k, v in outputs.items()))
    else:
        console.print(f"identical words for all {len(captions)} captions from all three")
    payload = {
        "benchmark": "nouns",
        "speedup": speedup,
        "bulk_speedup": bulk_speedup,
        "wall_speedup": wall_speedup,
        "distinct_captions": distinct,
        "repeat_fraction": repeats,
        "identical_words": not diffs,
        "differing_captions": len(diffs),
        "targets": {"speedup": {"target": SPEEDUP_TARGET, "met": speedup >= SPEEDUP_TARGET}},
        "results": {r.name: r.as_dict("captions") for r in runs},
        "pipeline": description,
        "config": {
            "captions_count": len(captions),
            "repeats": args.repeats,
            "model_dir": str(args.model_dir),
            "captions": str(args.captions),
        },
        "machine": machine(),
    }
    return payload, not diffs


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    reason = missing_inputs(args)
    if reason:
        console.print(f"[yellow]skipped[/yellow]: {reason}")
        return 0
    payload, identical = run(args)
    write_json(args.json, payload)
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
