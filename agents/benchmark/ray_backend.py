"""The Ray backend of :mod:`agents.benchmark`: the cells of :mod:`~agents.benchmark.cells` as Ray tasks.

    python -m agents.benchmark ... --backend ray                    # a local Ray instance (as ray.init())
    python -m agents.benchmark ... --backend ray --address ADDR     # an existing cluster

Each task runs :func:`agents.benchmark.cells.run_cell`, the very function the local workers run,
in a worker set up as theirs (one torch/OpenMP thread, a private numba cache). Cells are done
when their ``result.json`` exists under ``--out``, so on a cluster ``--out`` must be a folder
every node sees at the same path (a shared file system), and ``duet`` must be importable on every
node. Finished cells are skipped before anything is submitted; rows are collected as cells finish.

Needs the optional extra ``duet[distributed]`` (``pip install -e ".[distributed]"``).
"""
from __future__ import annotations

from pathlib import Path

from tqdm.auto import tqdm

from agents.benchmark.cells import RESULT, CellSpec, _worker_init, run_cell

INSTALL = 'pip install -e ".[distributed]"'
# In the worker's environment before it imports anything (torch reads it when it loads).
WORKER_ENV = {"OMP_NUM_THREADS": "1"}


def import_ray():
    """``ray``, or SystemExit naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise SystemExit(f"--backend ray needs Ray, the optional extra duet[distributed]: {INSTALL}") from None
    return ray


def _ray_cell(spec: CellSpec, out: str) -> dict:
    """One cell in a Ray worker: the local workers' set-up, then :func:`run_cell`."""
    _worker_init()
    return run_cell(spec, Path(out))


def run_cells_ray(specs: list[CellSpec], out: Path, address: str | None = None, cpus_per_cell: float = 1,
                  progress: bool = True) -> list[dict]:
    """Run every unfinished cell as a Ray task (``num_cpus=cpus_per_cell`` each); rows in ``specs``
    order. Connects to ``address``; without one, does what ``ray.init()`` does (``RAY_ADDRESS``, a
    cluster started on this machine, else a new local instance); disconnects (and stops the local
    instance) at the end. Reuses Ray when this process already called ``ray.init``."""
    ray = import_ray()
    if cpus_per_cell <= 0:
        raise SystemExit("--ray-cpus-per-cell must be positive")
    rows: list[dict | None] = [None] * len(specs)
    todo = []
    for i, spec in enumerate(specs):  # finished cells: read here, never submitted
        if (spec.directory(out) / RESULT).is_file():
            rows[i] = run_cell(spec, out)
        else:
            todo.append(i)
    bar = tqdm(total=len(specs), initial=len(specs) - len(todo), desc="cells", unit="cell", disable=not progress)
    started_ray = False
    if todo and not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
        started_ray = True
    try:
        if todo:
            task = ray.remote(_ray_cell).options(num_cpus=cpus_per_cell, max_retries=0,
                                                 runtime_env={"env_vars": dict(WORKER_ENV)})
            out_s = str(Path(out).resolve())
            pending = {task.remote(specs[i], out_s): i for i in todo}
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    i = pending.pop(ref)
                    rows[i] = ray.get(ref)  # a failed cell raises here, as in the local pool
                    bar.set_postfix_str(f"{specs[i].task}/{specs[i].algo}/seed{specs[i].seed}")
                    bar.update()
    finally:
        bar.close()
        if started_ray:
            ray.shutdown()
    return rows


__all__ = ["INSTALL", "WORKER_ENV", "import_ray", "run_cells_ray"]
