"""``GPTPolicy``: the pretrained follower GPT as a stable-baselines3 actor-critic policy.

    from stable_baselines3 import PPO
    from agents.sb3 import GPTPolicy

    env = gym.make("DuetAccompany-v0")                        # the "tokens" observation (default)
    model = PPO(GPTPolicy, env, policy_kwargs={"gpt": "default"}, learning_rate=1e-5)
    model.learn(4096)
    model.save("ppo_gpt.zip"); PPO.load("ppo_gpt.zip")       # the whole fine-tuned GPT is in the zip
    model.policy.export_gpt("runs/ppo")                       # runs/ppo/policy: FollowerPolicy.load-able

The network is the one ``agents.finetune`` trains (:func:`agents.finetune.split_policy_head`,
:class:`agents.finetune.Critic`): the GPT's embeddings, look-ahead encoders and first half of
the blocks are a frozen state network, the other blocks, the final LayerNorm and the five heads
(one per follower stream up/down/lhand/rhand/transl: the env's ``MultiDiscrete`` action) are
the actor, and a small transformer over the frozen state is the value head. So ``PPO``, ``A2C``
and our own ``--algo offpolicy`` / ``--algo ac`` differ only in their update rules (SB3's have
no KL term to the pretrained policy; PPO's clipping is its only brake).

Why a :class:`BasePolicy` subclass and not :class:`ActorCriticPolicy`: the latter builds a
features extractor, an MLP extractor and a fresh ``action_net`` and orthogonally re-initialises
them, none of which this policy has; every method PPO and A2C call (``forward``,
``evaluate_actions``, ``get_distribution``, ``predict_values``, ``_predict``, ``optimizer``,
``set_training_mode``) is implemented here instead. SB3's observation preprocessing is bypassed
on purpose: it would one-hot the token ids (MultiDiscrete observations), the GPT embeds them.

Dropout stays off in training, as in ``agents.finetune``: the initial distribution is exactly
the pretrained policy's (:class:`pretrain.gpt.FollowerPolicy`) and updates are deterministic.
"""
from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.distributions import MultiCategoricalDistribution
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule

from agents.finetune import Critic, export_policy, split_policy_head
from duet_env.conventions import FOLLOWER_STREAMS, LEADER_STREAMS
from duet_env.observations import TokensObservation
from pretrain.gpt.policy import load_model


def tokens_space_of(config: dict) -> spaces.Dict:
    """The ``"tokens"`` observation space an env must have for a GPT of ``config`` (the env's
    own :class:`TokensObservation` builds it, so the layout has one home)."""
    shape = SimpleNamespace(history=int(config["history"]), lookahead=int(config["lookahead"]),
                            codebook_sizes={s: int(k) for s, k in config["codebook_sizes"].items()})
    return TokensObservation().space(shape)


def check_spaces(observation_space: spaces.Space, action_space: spaces.Space, config: dict, source: str) -> None:
    """Refuse an env whose spaces this GPT cannot read or act in, saying which env config fixes it."""
    want = tokens_space_of(config)
    if not (isinstance(observation_space, spaces.Dict) and set(observation_space.spaces) == set(want.spaces)):
        raise ValueError(
            f"GPTPolicy reads DuetAccompany-v0's \"tokens\" observation (Dict with keys {sorted(want.spaces)}; "
            f"the env's default, observation=\"tokens\"), got {observation_space}. For the \"features\" "
            "observation use SB3's MlpPolicy.")
    got = observation_space.spaces
    h, w = config["history"], config["history"] + 1 + config["lookahead"]
    h_env = got["follower"].shape[0] / len(FOLLOWER_STREAMS) if got["follower"].shape else None
    w_env = got["leader"].shape[0] / len(LEADER_STREAMS) if got["leader"].shape else None
    if got["music"].shape != want["music"].shape or h_env != h or w_env != w:
        raise ValueError(
            f"GPTPolicy: the GPT {source!r} reads history {h} and look-ahead {config['lookahead']} tokens "
            f"(window {w}); the env's observation has a follower history of {h_env} and a window of {w_env} "
            f"tokens (music {got['music'].shape}). Make the env with history_tokens={h}, "
            f"lookahead_tokens={config['lookahead']}.")
    for key in ("leader", "follower"):
        if not (isinstance(got[key], spaces.MultiDiscrete) and np.array_equal(got[key].nvec, want[key].nvec)):
            raise ValueError(
                f"GPTPolicy: the env's {key!r} token ids do not match the GPT {source!r} (codebook sizes "
                f"{config['codebook_sizes']}, pad id = size): got {got[key]}. Use the tokenizer the GPT was "
                "trained with (the env's tokenizer= option).")
    nvec = [int(config["codebook_sizes"][s]) for s in FOLLOWER_STREAMS]
    if not (isinstance(action_space, spaces.MultiDiscrete) and action_space.nvec.tolist() == nvec):
        raise ValueError(f"GPTPolicy: the GPT {source!r} emits one token per stream {list(FOLLOWER_STREAMS)} with "
                         f"codebook sizes {nvec}; the env's action space is {action_space}.")


class GPTPolicy(BasePolicy):
    """Actor = the pretrained follower GPT's policy head over its frozen state network; critic
    = :class:`agents.finetune.Critic` over the same state (see the module docstring).

    :param gpt: the pretrained GPT, a shipped checkpoint name (``"default"``) or a checkpoint
        folder (``FollowerPolicy.load``'s argument). ``PPO.load`` rebuilds the policy from it
        and then overwrites every weight from the saved zip, so it must still exist there.
    :param use_sde: must be False (gSDE is for continuous actions; SB3 passes it to every policy).
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, lr_schedule: Schedule,
                 gpt: str | os.PathLike = "default", use_sde: bool = False,
                 optimizer_class: type[torch.optim.Optimizer] = torch.optim.Adam,
                 optimizer_kwargs: dict | None = None, normalize_images: bool = True):
        if use_sde:
            raise ValueError("GPTPolicy: use_sde=True (gSDE) needs a continuous action space; "
                             "DuetAccompany-v0's actions are tokens (MultiDiscrete)")
        model, config, _ = load_model(gpt, "cpu")
        check_spaces(observation_space, action_space, config, str(gpt))
        if optimizer_kwargs is None and optimizer_class is torch.optim.Adam:
            optimizer_kwargs = {"eps": 1e-5}  # SB3's own default for its actor-critic policies
        super().__init__(observation_space, action_space, optimizer_class=optimizer_class,
                         optimizer_kwargs=optimizer_kwargs, normalize_images=normalize_images)
        self.gpt_source = str(gpt)
        self.gpt = model.eval()
        self.split, trainable = split_policy_head(self.gpt)
        self.critic = Critic.for_model(self.gpt)
        self.action_dist = MultiCategoricalDistribution(list(action_space.nvec))
        params = trainable + list(self.critic.parameters())
        self.optimizer = self.optimizer_class(params, lr=lr_schedule(1), **self.optimizer_kwargs)

    def _get_constructor_parameters(self) -> dict:
        data = super()._get_constructor_parameters()
        data.update(lr_schedule=self._dummy_schedule, gpt=self.gpt_source, use_sde=False,
                    optimizer_class=self.optimizer_class, optimizer_kwargs=self.optimizer_kwargs)
        return data

    def train(self, mode: bool = True) -> "GPTPolicy":
        """SB3 switches to training mode for its updates; the GPT's dropout stays off (as in
        agents.finetune), so the policy being improved is the one that collected the data."""
        super().train(mode)
        self.gpt.eval()
        return self

    # -- the network ----------------------------------------------------------------------
    def state(self, obs: PyTorchObs) -> torch.Tensor:
        """The frozen state network's output for a batch of "tokens" observations."""
        b = obs["leader"].shape[0]
        music = self.gpt.music_input(obs["music"].float().view(b, self.gpt.window, -1), obs["leader_turn"])
        leader = obs["leader"].long().view(b, self.gpt.window, len(LEADER_STREAMS))
        follower = obs["follower"].long().view(b, self.gpt.history, len(FOLLOWER_STREAMS))
        with torch.no_grad():
            return self.gpt.state(music, leader, follower, self.split)

    def _distribution(self, state: torch.Tensor) -> MultiCategoricalDistribution:
        logits = self.gpt.head(state, self.split, last_only=True)  # one (B, K_s) per stream
        return self.action_dist.proba_distribution(action_logits=torch.cat(logits, dim=-1))

    def _value(self, state: torch.Tensor) -> torch.Tensor:
        return self.critic(state)[:, None]  # SB3 expects (B, 1)

    # -- what SB3 calls -------------------------------------------------------------------
    def forward(self, obs: PyTorchObs, deterministic: bool = False):
        """Actions (B, 5), values (B, 1) and log π(actions) (B,) — the rollout step."""
        state = self.state(obs)
        dist = self._distribution(state)
        actions = dist.get_actions(deterministic=deterministic)
        return actions, self._value(state), dist.log_prob(actions)

    def evaluate_actions(self, obs: PyTorchObs, actions: torch.Tensor):
        """Values (B, 1), log π(actions) (B,) summed over the five streams, entropy (B,)."""
        state = self.state(obs)
        dist = self._distribution(state)
        return self._value(state), dist.log_prob(actions), dist.entropy()

    def get_distribution(self, obs: PyTorchObs) -> MultiCategoricalDistribution:
        """The five per-stream categoricals (``.distribution[i].probs`` is stream i's (B, K_i))."""
        return self._distribution(self.state(obs))

    def predict_values(self, obs: PyTorchObs) -> torch.Tensor:
        return self._value(self.state(obs))

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> torch.Tensor:
        return self.get_distribution(observation).get_actions(deterministic=deterministic)

    # -- leaving SB3 ----------------------------------------------------------------------
    def export_gpt(self, out: str | os.PathLike) -> str:
        """Write the (fine-tuned) GPT to ``out/policy`` as agents.finetune does; the folder is
        what ``FollowerPolicy.load`` and ``python -m agents.evaluate --policy`` take."""
        export_policy(Path(out), self.gpt)
        return str(Path(out) / "policy")
