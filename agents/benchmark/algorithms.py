"""Benchmark algorithms: a name -> how to train a follower on a task within a step budget.

Every algorithm returns a :class:`Trained`: the policy to score (anything
:func:`agents.rollout.generate_followers` takes), the observation it reads, the env steps it
used and its learning curve. Scoring is not the algorithm's business: :mod:`agents.benchmark.cells`
scores every one the same way, so rows of a table differ only by how the policy was trained.

- ``pretrained``, ``random`` and ``gt-tokens`` (the ground-truth followers' tokens replayed):
  the references that show a task's headroom (no training, 0 env steps); ``gt``: the recorded
  ground-truth follower motion itself, scored offline without the env (:data:`REFERENCES`, the
  rows of the task cards, :mod:`agents.benchmark.cards`).
- ``offpolicy`` and ``ac``: :func:`agents.finetune.run` with the cell's budget (resumable).
- ``ppo`` and ``a2c``: stable-baselines3 on :class:`agents.sb3.GPTPolicy` (the same network,
  started from the same GPT), hyperparameters from ``agents/hyperparams/ppo.yml``.
- ``ppo-mlp``: SB3 PPO with ``MlpPolicy`` from scratch on the ``"features"`` observation
  (``agents/hyperparams/ppo_mlp.yml``), the reference without pretraining.

Budgets: ``Budget.quick`` shrinks episodes and batches so a few hundred steps still make
several updates; otherwise the algorithms' own defaults (finetune's config, the yml files).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from agents.benchmark.registry import Registry
from agents.benchmark.tasks import Task

HYPERPARAMS = Path(__file__).resolve().parent.parent / "hyperparams"


@dataclass(frozen=True)
class Budget:
    steps: int          # env steps (tokens generated) for training
    seed: int
    quick: bool = False


@dataclass
class Trained:
    policy: object                   # "random", a FollowerPolicy, an adapter with .config/.sample, or None
    observation: str = "tokens"      # the env observation the policy reads
    env_steps: int = 0
    curve: list[dict] = field(default_factory=list)   # [{"env_steps": n, "train_reward": r}, ...]
    # a policy made from the test episodes themselves (ground-truth replay), used instead of ``policy``
    episode_policy: Callable[[list], object] | None = None
    # follower joints given directly for the test episodes (no env, no policy): scored offline
    recorded_followers: Callable[[list], list] | None = None

    def policy_for(self, clips: list) -> object:
        """The policy to score on ``clips`` (the task's test episodes)."""
        return self.episode_policy(clips) if self.episode_policy is not None else self.policy


@dataclass(frozen=True)
class Algorithm:
    name: str
    description: str
    train: Callable[[Task, Path, Budget], Trained]
    resumable: bool = False          # a killed cell continues (else its directory is started afresh)
    needs_policy: bool = True        # starts from the task's GPT (a held-out GPT is made ready first)


# ------------------------------------------------------------------------------------------
def _pretrained(task: Task, workdir: Path, budget: Budget) -> Trained:
    from pretrain.gpt import FollowerPolicy

    return Trained(FollowerPolicy.load(task.policy, device="cpu"))


def _random(task: Task, workdir: Path, budget: Budget) -> Trained:
    return Trained("random")


def _gt_tokens(task: Task, workdir: Path, budget: Budget) -> Trained:
    """The ceiling as the env can play it: each test clip's ground-truth follower, encoded by the
    tokenizer and replayed token by token (``agents.reward_table``'s ``gt-tokens`` row)."""
    def replay(clips):
        from agents.rollout import ReplayPolicy
        from duet_env.env import load_tokenizer
        from duet_env.episodes import episode_clips

        bank = episode_clips(clips, load_tokenizer(task.tokenizer), with_follower=True)
        return ReplayPolicy([b.follower_tokens for b in bank])
    return Trained(None, episode_policy=replay)


def _ground_truth(task: Task, workdir: Path, budget: Budget) -> Trained:
    """The test clips' recorded ground-truth followers, scored without the env (as
    ``agents.reward_table``'s ``gt`` row: no tokenizer, so ``skating`` has no decoder root velocity
    and scores its planted-foot fallback; rule_error_cm is 0 by definition)."""
    return Trained(None, recorded_followers=lambda clips: [c.follower.joints for c in clips])


def finetune_config(algo: str, task: Task, budget: Budget):
    """The :class:`agents.finetune.FinetuneConfig` of an ``offpolicy`` / ``ac`` cell."""
    from agents.finetune import FinetuneConfig

    sizes = {"num_envs": 4, "episode_tokens": 16, "minibatch": 4} if budget.quick else {}
    # foreign-music: offpolicy explores with foreign music on every episode (ac has no such option)
    ood = {"ood_share": 1.0} if task.foreign_music else {}
    # ac with the README's fine-tuning setting (a weaker KL anchor and a larger step than
    # agents.finetune's defaults, which are offpolicy's): its published rows use these
    tuned = {"kl_coef": 0.3, "lr": 1e-4} if algo == "ac" else {}
    return FinetuneConfig(algo=algo, reward=task.reward, data=task.data, policy=task.policy,
                          tokenizer=task.tokenizer, steps=budget.steps, seed=budget.seed,
                          device="cpu", threads=1, **sizes, **ood, **tuned)


def _finetune(algo: str) -> Callable[[Task, Path, Budget], Trained]:
    def train(task: Task, workdir: Path, budget: Budget) -> Trained:
        from agents.finetune import run
        from pretrain.gpt import FollowerPolicy

        cfg = finetune_config(algo, task, budget)
        resume = (workdir / "checkpoint.json").exists()
        summary = run(cfg, workdir, resume=resume, progress=False, score=False)
        per_round = cfg.num_envs * cfg.episode_tokens
        curve = [{"env_steps": c["round"] * per_round, "train_reward": c["train_reward"]} for c in summary["curve"]]
        return Trained(FollowerPolicy.load(workdir / "policy", device="cpu"), env_steps=cfg.rounds * per_round,
                       curve=curve)
    return train


def _zoo_hyperparams(file: str) -> dict:
    import yaml

    return dict(yaml.safe_load((HYPERPARAMS / file).read_text())["DuetAccompany-v0"])


def _gpt_window(task: Task) -> tuple[int, int]:
    from pretrain.gpt.policy import load_model

    config = load_model(task.policy, "cpu")[1]
    return int(config["history"]), int(config["lookahead"])


class SB3Follower:
    """An SB3 model as a follower policy for :func:`agents.rollout.generate_followers`
    (``config`` gives the env window, ``sample`` acts on a batch of observations)."""

    def __init__(self, model, history: int, lookahead: int):
        self.model = model
        self.config = {"history": history, "lookahead": lookahead}

    def sample(self, obs, mode: str = "greedy", generator=None):
        return self.model.predict(obs, deterministic=mode == "greedy")[0]


def _sb3(algo: str, observation: str) -> Callable[[Task, Path, Budget], Trained]:
    def train(task: Task, workdir: Path, budget: Budget) -> Trained:
        import duet_env  # noqa: F401  (registers DuetAccompany-v0)
        from stable_baselines3 import A2C, PPO
        from stable_baselines3.common.callbacks import BaseCallback
        from stable_baselines3.common.env_util import make_vec_env

        hp = _zoo_hyperparams("ppo.yml" if observation == "tokens" else "ppo_mlp.yml")
        hp.pop("n_timesteps")
        hp.pop("env_kwargs", None)
        policy = hp.pop("policy")
        hp.pop("policy_kwargs", None)
        if algo == "a2c":  # A2C takes the shared settings; its rollouts are short by design
            hp = {k: hp[k] for k in ("n_envs", "learning_rate", "gamma", "gae_lambda", "ent_coef", "vf_coef",
                                     "max_grad_norm") if k in hp}
            hp["n_steps"] = 8
        episode_tokens = 64
        if budget.quick:
            episode_tokens = 16
            hp.update(n_envs=2, **({"n_steps": 64, "batch_size": 32, "n_epochs": 2} if algo == "ppo" else {}))
        history, lookahead = _gpt_window(task)
        env = make_vec_env("DuetAccompany-v0", n_envs=hp.pop("n_envs"), seed=budget.seed,
                           env_kwargs=task.env_kwargs(history, lookahead, episode_tokens, observation))
        kwargs = {"policy_kwargs": {"gpt": task.policy}} if observation == "tokens" else {}
        if observation == "tokens":
            from agents.sb3 import GPTPolicy

            policy = GPTPolicy
        cls = PPO if algo == "ppo" else A2C
        model = cls(policy, env, seed=budget.seed, device="cpu", verbose=0, **kwargs, **hp)

        curve: list[dict] = []

        class Curve(BaseCallback):
            def _on_step(self) -> bool:
                return True

            def _on_rollout_end(self) -> None:
                curve.append({"env_steps": int(self.num_timesteps),
                              "train_reward": float(self.model.rollout_buffer.rewards.mean())})

        model.learn(budget.steps, callback=Curve())
        env.close()
        if observation == "tokens":
            from pretrain.gpt import FollowerPolicy

            model.policy.export_gpt(workdir)  # the fine-tuned GPT, scored as every GPT is
            return Trained(FollowerPolicy.load(workdir / "policy", device="cpu"),
                           env_steps=int(model.num_timesteps), curve=curve)
        model.save(workdir / "model.zip")
        return Trained(SB3Follower(model, history, lookahead), observation=observation,
                       env_steps=int(model.num_timesteps), curve=curve)
    return train


# ------------------------------------------------------------------------------------------
_ALGOS: Registry[Algorithm] = Registry("algorithm")
register_algorithm = _ALGOS.register
algorithm_names = _ALGOS.names
get_algorithm = _ALGOS.get  # unknown name: KeyError naming the known ones

register_algorithm(Algorithm("pretrained", "the task's pretrained GPT, greedy, no training", _pretrained))
register_algorithm(Algorithm("random", "uniformly random tokens", _random, needs_policy=False))
register_algorithm(Algorithm("gt-tokens", "the test followers' own tokens replayed (ground truth as the env plays it)",
                             _gt_tokens, needs_policy=False))
register_algorithm(Algorithm("gt", "the recorded ground-truth follower motion, scored offline (no env)",
                             _ground_truth, needs_policy=False))
register_algorithm(Algorithm("offpolicy", "agents.finetune --algo offpolicy (memory replay, Duolando)",
                             _finetune("offpolicy"), resumable=True))
register_algorithm(Algorithm("ac", "agents.finetune --algo ac (on-policy actor-critic, Bailando)",
                             _finetune("ac"), resumable=True))
register_algorithm(Algorithm("ppo", "stable-baselines3 PPO on agents.sb3.GPTPolicy", _sb3("ppo", "tokens")))
register_algorithm(Algorithm("a2c", "stable-baselines3 A2C on agents.sb3.GPTPolicy", _sb3("a2c", "tokens")))
register_algorithm(Algorithm("ppo-mlp", "stable-baselines3 PPO, MlpPolicy from scratch on the features observation",
                             _sb3("ppo", "features")))

# The reference rows of a task card: what the recorded ground truth, its tokens as the env plays
# them, the task's pretrained GPT and random tokens score (headroom = gt-tokens − pretrained).
REFERENCES = ("gt", "gt-tokens", "pretrained", "random")
