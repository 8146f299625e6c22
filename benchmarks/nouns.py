"""Noun extraction with stanza: one batched `extract(captions)` vs one `extract([caption])` per caption.

Both run the same `NounExtractor` (the offline stanza model, filter "noun", 1 torch thread, as
`openseg extract-nouns` builds it) on the same real COCO val2017 captions, interleaved repeat by repeat.
`speedup` = batched captions/s / per-caption captions/s (target >= 8, the project's issue). Both must give
identical words; a difference is printed and the script exits 1. Without the model or the captions it
says so and exits 0.

Run: .venv/bin/python benchmarks/nouns.py [--json PATH] [--captions-count 500]
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
    p.add_argument("--captions-count", type=int, default=500, help="first N captions, default 500")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per competitor (median reported)")
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
    from openseg_cli.text.nouns import NounExtractor

    logging.getLogger("stanza").setLevel(logging.WARNING)
    captions = load_captions(args.captions, args.captions_count)
    extractor = NounExtractor.from_options(args.model_dir, offline=True, filter="noun", num_threads=1)
    outputs: dict[str, list[list[str]]] = {}

    def batched() -> int:
        outputs["batched"] = extractor.extract(captions)
        return len(captions)

    def one_by_one() -> int:
        outputs["per caption"] = [extractor.extract([c])[0] for c in captions]
        return len(captions)

    competitors = [(Runs("batched extract", len(captions)), batched)]
    competitors.append((Runs("one call per caption", len(captions)), one_by_one))
    extractor.extract(captions[:64])  # warm-up: lazy imports, allocator, first-call paths
    for c in captions[:16]:
        extractor.extract([c])
    for _ in range(args.repeats):
        for runs, fn in competitors:
            measure(runs, fn)
    return summarise(args, [r for r, _ in competitors], outputs, captions, extractor.description)


def summarise(
    args: argparse.Namespace,
    runs: list[Runs],
    outputs: dict[str, list[list[str]]],
    captions: list[str],
    description: str,
) -> tuple[dict[str, Any], bool]:
    bulk, single = runs
    speedup = bulk.rate_per_core / single.rate_per_core
    wall_speedup = bulk.rate / single.rate
    diffs = [
        i for i, (a, b) in enumerate(zip(outputs["batched"], outputs["per caption"], strict=True)) if a != b
    ]
    title = f"stanza noun extraction, first {len(captions)} COCO val2017 captions, median of {args.repeats}"
    console.print(results_table(title, runs, "captions", reference=single))
    console.print(targets_table([("speedup", "batched / one call per caption", speedup, SPEEDUP_TARGET)]))
    console.print(f"pipeline: {description}")
    console.print(f"wall-clock speedup {wall_speedup:.2f}x; the ratio above uses captions per CPU second")
    if diffs:
        console.print(f"[red]words differ for {len(diffs)} of {len(captions)} captions[/red], e.g.:")
        for i in diffs[:5]:
            console.print(
                f"  {captions[i]!r}: batched {outputs['batched'][i]} vs single {outputs['per caption'][i]}"
            )
    else:
        console.print(f"identical words for all {len(captions)} captions")
    payload = {
        "benchmark": "nouns",
        "speedup": speedup,
        "wall_speedup": wall_speedup,
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
