"""data/ stays pure python/torch/numpy/PIL/webdataset: no lightning, typer or rich."""

from __future__ import annotations

import subprocess
import sys


def test_data_does_not_import_app_frameworks() -> None:
    code = (
        "import sys, pkgutil, importlib, openseg_cli.data as d\n"
        "for m in pkgutil.iter_modules(d.__path__): importlib.import_module('openseg_cli.data.' + m.name)\n"
        "banned = {'lightning', 'pytorch_lightning', 'typer', 'rich'}\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in banned)\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
