"""The output folder appears whole or not at all: files are written to a hidden temporary folder
beside it (``.NAME.partial-XXXX``), which is renamed to ``NAME`` only after every file is written.
A failed or interrupted run removes the temporary folder (and any parent folder it created);
even a killed run leaves only a hidden ``*.partial-*`` folder, never one that looks complete."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from .errors import AccompanyError


def check_target(out: Path, overwrite: bool) -> None:
    """Refuse a target that is a file, or a non-empty folder without ``overwrite`` (before any work)."""
    if out.exists() and not out.is_dir():
        raise AccompanyError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise AccompanyError(f"--out {out}: folder exists and is not empty; pass --overwrite to replace it")


class Staging:
    """Context manager: ``with Staging(out, overwrite) as tmp: ...write into tmp...; stage.commit()``."""

    def __init__(self, out: Path, overwrite: bool = False):
        self.out = Path(out).absolute()
        self.overwrite = overwrite
        self.tmp: Path | None = None
        self._created: list[Path] = []
        self.committed = False

    def __enter__(self) -> "Staging":
        check_target(self.out, self.overwrite)
        missing = []
        parent = self.out.parent
        while not parent.exists():
            missing.append(parent)
            parent = parent.parent
        for folder in reversed(missing):
            folder.mkdir()
            self._created.append(folder)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.partial-", dir=self.out.parent))
        return self

    def commit(self) -> Path:
        """Move the finished folder into place (replacing an old one when allowed)."""
        assert self.tmp is not None
        check_target(self.out, self.overwrite)  # nobody filled it meanwhile
        old = None
        if self.out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.old-", dir=self.out.parent))
            self.out.rename(old / "previous")
        self.tmp.rename(self.out)
        self.committed = True
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.out

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.committed:
            return
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
        for folder in reversed(self._created):  # deepest first; only if still empty
            try:
                folder.rmdir()
            except OSError:
                break
