"""Import a script of ``benchmarks/`` (not a package) as a module, so tests call its functions."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark_script(name: str):
    """``benchmarks/<name>.py`` imported as module ``name``."""
    if str(BENCHMARKS) not in sys.path:  # the scripts import their siblings (e.g. metric_noise)
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
