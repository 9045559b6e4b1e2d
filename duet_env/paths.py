"""Where duet keeps generated data and caches (never inside the package)."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$DUET_CACHE_DIR`` if set, else ``~/.cache/duet``; created on first use."""
    root = Path(os.environ.get("DUET_CACHE_DIR", Path.home() / ".cache" / "duet")).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root
