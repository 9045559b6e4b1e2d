"""``python -m agents.benchmark``: RL algorithms side by side on DuetAccompany-v0 tasks.

    python -m agents.benchmark --tasks in-distribution,foreign-music --algos pretrained,ac,ppo \\
        --seeds 5 --steps 8192 --out runs/bench --workers 2
    python -m agents.benchmark --quick --out runs/bench_quick     # a few hundred steps, minutes
    python -m agents.benchmark cards --out runs/bench --cards docs/tasks.md   # the task cards

One concept per module:

- :mod:`~agents.benchmark.tasks`: the task registry (env config, reward, pretrained GPT, fixed
  test episodes);
- :mod:`~agents.benchmark.held_out_gpt`: the ``unseen-genre`` GPT, trained once and cached;
- :mod:`~agents.benchmark.algorithms`: the algorithm registry (how to train within a budget);
- :mod:`~agents.benchmark.cells`: one (task, algorithm, seed) job, resumable, and the local runner;
- :mod:`~agents.benchmark.ray_backend`: the same cells as Ray tasks (``--backend ray``);
- :mod:`~agents.benchmark.report`: ``results.jsonl`` and ``results.md``;
- :mod:`~agents.benchmark.plots`: rliable's interval estimates and the PNG plots;
- :mod:`~agents.benchmark.cards`: the task cards (``python -m agents.benchmark cards``).
"""
from agents.benchmark.algorithms import Algorithm, Budget, Trained, algorithm_names, get_algorithm, register_algorithm
from agents.benchmark.cells import CellSpec, Overrides, run_cell, run_cells
from agents.benchmark.report import write_report
from agents.benchmark.tasks import Task, TaskNotAvailable, get_task, register_task, task_names

__all__ = ["Algorithm", "Budget", "CellSpec", "Overrides", "Task", "TaskNotAvailable", "Trained",
           "algorithm_names", "get_algorithm", "get_task", "register_algorithm", "register_task",
           "run_cell", "run_cells", "task_names", "write_report"]
