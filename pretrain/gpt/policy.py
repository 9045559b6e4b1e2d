"""FollowerPolicy: the pretrained follower GPT behind the env's ``"tokens"`` observation."""
from __future__ import annotations

import os

import numpy as np
import torch

from duet_env.conventions import FOLLOWER_STREAMS, LEADER_STREAMS
from duet_env.tokens import window_length
from duet_env import checkpoint

from .model import FollowerGPT
from .stream import FollowerStream

CHECKPOINT_STEM = "gpt"
TRAINING_PREFIXES = ("optim/",)  # tensors a training checkpoint carries beside the weights


def load_model(name_or_path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[FollowerGPT, dict, dict]:
    """``(model, config, state)`` of a GPT checkpoint folder (or shipped name) in eval mode."""
    tensors, config, state = checkpoint.load(name_or_path, CHECKPOINT_STEM, device="cpu")
    try:
        model = FollowerGPT(config)
    except (ValueError, KeyError, TypeError) as e:
        raise checkpoint.CheckpointError(f"GPT checkpoint {name_or_path}: bad config: {e}") from e
    weights = {k: v for k, v in tensors.items() if not k.startswith(TRAINING_PREFIXES)}
    checkpoint.load_state_dict_strict(model, weights, where=str(name_or_path))
    return model.to(checkpoint.resolve_device(str(device))).eval(), config, state


def _shape(x) -> tuple:
    return tuple(x.shape) if hasattr(x, "shape") else np.shape(x)


class FollowerPolicy:
    """Follower GPT wrapped for the env: observation dict in, per-stream logits / tokens out.

    The observation is the env's ``"tokens"`` dict (duet_env/tokens.py): ``music`` (W, 216),
    ``leader`` (W·4,), ``leader_turn`` (W·4,) (read only by a GPT with config ``leader_turn``),
    ``follower`` (H·5,) — numpy or torch, unbatched or with a leading batch axis B. Logits are
    those of window position H (decision step t).
    """

    def __init__(self, model: FollowerGPT, config: dict | None = None, device: str | torch.device = "cpu"):
        self.device = checkpoint.resolve_device(str(device))
        self.model = model.to(self.device).eval()
        self.config = dict(config or model.config)
        self.history, self.lookahead = int(self.config["history"]), int(self.config["lookahead"])
        self.window = window_length(self.history, self.lookahead)
        self.codebook_sizes = [int(self.config["codebook_sizes"][s]) for s in FOLLOWER_STREAMS]
        self.state: dict = {}

    @classmethod
    def load(cls, name_or_path: str | os.PathLike = "default", device: str | torch.device = "cpu") -> "FollowerPolicy":
        model, config, state = load_model(name_or_path, device)
        policy = cls(model, config, device)
        policy.state = state
        return policy

    def _tensors(self, observation: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool]:
        for key in ("music", "leader", "follower") + (("leader_turn",) if self.model.leader_turn else ()):
            if key not in observation:
                raise KeyError(f"FollowerPolicy: observation lacks {key!r} (has {sorted(observation)})")
        music = torch.as_tensor(observation["music"], dtype=torch.float32, device=self.device)
        leader = torch.as_tensor(observation["leader"], device=self.device).long()
        follower = torch.as_tensor(observation["follower"], device=self.device).long()
        # music comes flat (W*216,) from the env (duet_env.tokens) or as (W, 216); batched adds B.
        flat_dim = self.window * int(self.config["music_dim"])
        batched = leader.ndim == 2
        if not batched:
            music, leader, follower = music[None], leader[None], follower[None]
        if music.ndim == 2 and music.shape[-1] == flat_dim:
            music = music.view(music.shape[0], self.window, -1)
        n_lead, n_fol = len(LEADER_STREAMS), len(FOLLOWER_STREAMS)
        w_music = music.shape[1] if music.ndim == 3 else None
        w_leader = leader.shape[-1] / n_lead if leader.ndim == 2 else None
        h_follower = follower.shape[-1] / n_fol if follower.ndim == 2 else None
        if (w_music != self.window or w_leader != self.window or h_follower != self.history
                or not (music.shape[0] == leader.shape[0] == follower.shape[0])):
            raise ValueError(
                f"FollowerPolicy: observation windows do not match the GPT config (history {self.history}, "
                f"lookahead {self.lookahead} -> window {self.window}, follower history {self.history}): got music "
                f"{_shape(observation['music'])}, leader {_shape(observation['leader'])} (window {w_leader}), "
                f"follower {_shape(observation['follower'])} (history {h_follower})"
            )
        b = music.shape[0]
        if self.model.leader_turn:
            turn = torch.as_tensor(observation["leader_turn"], dtype=torch.float32, device=self.device)
            music = self.model.music_input(music, turn if batched else turn[None])
        return music, leader.view(b, self.window, n_lead), follower.view(b, self.history, n_fol), batched

    @torch.no_grad()
    def act(self, observation: dict) -> list[torch.Tensor]:
        """Logits per follower stream at the decision step: 5 tensors (B, K_s), or (K_s,) unbatched."""
        music, leader, follower, batched = self._tensors(observation)
        logits = self.model(music, leader, follower, last_only=True)
        return logits if batched else [lg[0] for lg in logits]

    def sample(self, observation: dict, mode: str = "greedy", temperature: float = 1.0, top_k: int | None = None,
               generator: torch.Generator | None = None) -> np.ndarray:
        """Follower tokens (B, 5) int64 (or (5,) unbatched); never the pad id (heads have K_s outputs).

        ``"greedy"`` takes the argmax; ``"sample"`` draws from softmax(logits / temperature),
        restricted to the ``top_k`` most likely ids when given.
        """
        check_sampling(mode, temperature, top_k)
        logits = self.act(observation)
        return choose_tokens(logits, mode, temperature, top_k, generator)

    def stream(self) -> "StreamingFollowerPolicy":
        """This policy with a KV cache (:mod:`pretrain.gpt.stream`) for rolling out episodes."""
        return StreamingFollowerPolicy(self)


class StreamingFollowerPolicy(FollowerPolicy):
    """A :class:`FollowerPolicy` that remembers its episodes: each ``act``/``sample`` call must get
    the next step's observation of the same batch of episodes (as ``agents.rollout`` feeds them),
    and only that step's new inputs are computed (exact for a ``"streaming"``-architecture GPT; a
    ``"window"`` GPT recomputes its window). ``restart`` (B,) bool marks rows whose episode begins
    at this call; :meth:`reset` forgets all episodes."""

    def __init__(self, policy: FollowerPolicy):
        super().__init__(policy.model, policy.config, policy.device)
        self.state = policy.state
        self.cache = FollowerStream(self.model)

    def reset(self) -> None:
        self.cache.reset()

    @torch.no_grad()
    def act(self, observation: dict, restart=None) -> list[torch.Tensor]:
        music, leader, follower, batched = self._tensors(observation)
        if restart is not None:
            restart = torch.as_tensor(np.atleast_1d(restart), dtype=torch.bool)
        logits = self.cache.logits(music, leader, follower, restart)
        return logits if batched else [lg[0] for lg in logits]

    def sample(self, observation: dict, mode: str = "greedy", temperature: float = 1.0, top_k: int | None = None,
               generator: torch.Generator | None = None, restart=None) -> np.ndarray:
        check_sampling(mode, temperature, top_k)
        logits = self.act(observation, restart)
        return choose_tokens(logits, mode, temperature, top_k, generator)

    def stream(self) -> "StreamingFollowerPolicy":
        return StreamingFollowerPolicy(self)


def check_sampling(mode: str, temperature: float, top_k: int | None) -> None:
    if mode not in ("greedy", "sample"):
        raise ValueError(f"FollowerPolicy.sample: mode must be 'greedy' or 'sample', got {mode!r}")
    if mode == "sample" and not temperature > 0:
        raise ValueError(f"FollowerPolicy.sample: temperature must be > 0, got {temperature!r}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"FollowerPolicy.sample: top_k must be >= 1, got {top_k!r}")


def choose_tokens(logits: list[torch.Tensor], mode: str, temperature: float, top_k: int | None,
                  generator: torch.Generator | None) -> np.ndarray:
    """One token per stream from per-stream logits (B, K_s) or (K_s,): argmax or a temperature /
    top-k sample. Returns (B, 5) or (5,) int64."""
    batched = logits[0].ndim == 2
    tokens = []
    for lg in logits:
        lg = lg if batched else lg[None]
        if mode == "greedy":
            tokens.append(lg.argmax(-1))
            continue
        lg = lg.float() / temperature
        if top_k is not None and top_k < lg.shape[-1]:
            kth = lg.topk(top_k, dim=-1).values[:, -1:]
            lg = lg.masked_fill(lg < kth, float("-inf"))
        probs = torch.softmax(lg, dim=-1)
        gen_device = generator.device if generator is not None else probs.device
        tokens.append(torch.multinomial(probs.to(gen_device), 1, generator=generator)[:, 0].to(probs.device))
    out = torch.stack(tokens, dim=-1).cpu().numpy().astype(np.int64)
    return out if batched else out[0]
