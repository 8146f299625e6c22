"""Ingestion memory: peak resident memory of `openseg prepare narratives` as the dataset grows 10×.

Localized Narratives come as JSONL files with several narratives per image, in no guaranteed order, so
the join of narratives to images is the part that could grow with the dataset. `prepare narratives`
keeps that join in a temporary SQLite file and streams samples into shards. This script writes
synthetic records in the real schema (N and 10·N records, two per image, tiny JPEGs) and runs the real
command on each in a fresh process, reading that process's own peak RSS (ru_maxrss) at exit.

`memory_growth` = peak at 10·N ÷ peak at N (target <= 1.2: flat, not proportional). Throughput
(records/s) is printed too. There is no competitor in this run: the figure is a ratio of sizes.

Run: .venv/bin/python benchmarks/ingest.py [--json PATH] [--records 5000]
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import console, machine, write_json
from PIL import Image
from rich.table import Table

GROWTH_TARGET = 1.2  # peak(10 N) / peak(N), at most

_CHILD = """
import resource, sys
from openseg_cli.cli.app import main
try:
    main(sys.argv[1:])
except SystemExit as done:
    if done.code:
        raise
print("MAXRSS_KIB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", help="write the figures to this JSON file")
    p.add_argument(
        "--records", type=int, default=5000, help="N: records of the small run (10 N for the large)"
    )
    return p.parse_args(argv)


def write_dataset(root: Path, records: int) -> tuple[Path, Path]:
    """`records` narratives in the real LN schema, two per image, and the images (8×8 JPEGs)."""
    images = root / "images"
    images.mkdir(parents=True)
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (120, 60, 30)).save(buffer, format="JPEG")
    jpeg = buffer.getvalue()
    lines = []
    for i in range(records):
        image_id = f"{i // 2:016x}"  # Open Images ids are 16 hex digits
        if i % 2 == 0:
            (images / f"{image_id}.jpg").write_bytes(jpeg)
        record = {
            "dataset_id": "open_images",
            "image_id": image_id,
            "annotator_id": 7,
            "caption": f"In this picture we can see a dog number {i} on the grass near a red car.",
            "timed_caption": [{"utterance": "In this", "start_time": 0.0, "end_time": 0.4}],
            "traces": [[{"x": 0.2, "y": 0.1, "t": 0.02}]],
            "voice_recording": f"open_images/{image_id}_7.ogg",
        }
        lines.append(json.dumps(record))
    # Interleave halves so one image's narratives are far apart in the file, as in a real download.
    lines = lines[0::2] + lines[1::2]
    jsonl = root / "narratives.jsonl"
    jsonl.write_text("\n".join(lines) + "\n")
    return jsonl, images


def run_prepare(root: Path, jsonl: Path, images: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of `openseg prepare narratives` in a fresh process."""
    command = [sys.executable, "-c", _CHILD, "prepare", "narratives", str(jsonl), "--images", str(images)]
    command += ["--out", str(root / "shards"), "--split", "train"]
    t0 = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode:
        raise RuntimeError(f"prepare narratives failed:\n{done.stderr[-2000:]}")
    kib = int(done.stdout.rsplit("MAXRSS_KIB", 1)[1].split()[0])
    return seconds, kib / 1024


def run(args: argparse.Namespace) -> dict[str, Any]:
    rows = {}
    with tempfile.TemporaryDirectory(prefix="openseg-bench-ingest-") as tmp:
        for records in (args.records, 10 * args.records):
            root = Path(tmp) / str(records)
            jsonl, images = write_dataset(root, records)
            seconds, peak = run_prepare(root, jsonl, images)
            rows[records] = {"seconds": seconds, "peak_mib": peak, "records_per_s": records / seconds}
    small, large = rows[args.records], rows[10 * args.records]
    return {
        "memory_growth": large["peak_mib"] / small["peak_mib"],
        "runs": {str(k): v for k, v in rows.items()},
        "settings": {"records": args.records},
        "machine": machine(),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    figures = run(args)
    table = Table(title="prepare narratives: peak memory as the dataset grows")
    for col in ("records", "seconds", "records/s", "peak RSS MiB"):
        table.add_column(col, justify="right")
    for records, row in figures["runs"].items():
        table.add_row(
            records, f"{row['seconds']:.1f}", f"{row['records_per_s']:.0f}", f"{row['peak_mib']:.0f}"
        )
    console.print(table)
    growth = figures["memory_growth"]
    verdict = "[green]PASS[/green]" if growth <= GROWTH_TARGET else "[red]MISS[/red]"
    console.print(
        f"memory_growth (peak at 10 N ÷ peak at N) = {growth:.2f}, target <= {GROWTH_TARGET}: {verdict}"
    )
    write_json(args.json, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
