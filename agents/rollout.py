"""Roll a policy over whole clips, all clips batched in one env core, and collect the
follower's motion (joints, and SMPL-X poses/transl for saving in DD100 format)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from duet_env import skeleton
from duet_env.conventions import TOKEN_FRAMES
from duet_env.core import DuetCore
from duet_env.data.clip import Clip
from duet_env.episodes import episode_clips
from duet_env.motion import matrix_to_axis_angle
from duet_env.observations import observation_factory
from duet_env.tokens import DEFAULT_HISTORY, DEFAULT_LOOKAHEAD


@dataclass
class FollowerMotion:
    name: str
    joints: np.ndarray   # (T, 55, 3)
    poses: np.ndarray    # (T, 165) axis-angle
    transl: np.ndarray   # (T, 3)
    tokens: np.ndarray   # (N, 5)
    reward: float        # mean per-step reward of the env's reward
    components: dict     # mean per-step value of every reward term


class NoReward:
    """The reward when none is wanted (``reward=None``): no terms, zero reward, nothing computed."""

    names: tuple[str, ...] = ()

    def __call__(self, ctx) -> tuple[np.ndarray, dict]:
        return np.zeros(len(ctx.step), np.float32), {}


class ReplayPolicy:
    """Plays given token sequences ``(N_i, 5)``, one row per env, step by step (last row repeated)."""

    def __init__(self, tokens: list[np.ndarray]):
        n = max(len(t) for t in tokens)
        self.tokens = np.stack([np.concatenate([t, np.repeat(t[-1:], n - len(t), 0)]) for t in tokens])
        self.config = {"history": DEFAULT_HISTORY, "lookahead": DEFAULT_LOOKAHEAD}
        self.t = 0

    def sample(self, obs, mode: str = "greedy", generator=None) -> np.ndarray:
        out = self.tokens[:, min(self.t, self.tokens.shape[1] - 1)]
        self.t += 1
        return out


def whole_clip_core(bank: list, tokenizer, history: int, lookahead: int, reward=None,
                    device: str = "cpu") -> DuetCore:
    """A core with one slot per clip of ``bank`` (:class:`duet_env.episodes.EpisodeClip`), slot i
    at the start of clip i for the whole clip: how whole clips are rolled out. ``reward``: a
    composite, or None for :class:`NoReward`."""
    core = DuetCore(bank, tokenizer, len(bank), history, lookahead, None,
                    NoReward() if reward is None else reward, device)
    for i, c in enumerate(bank):
        core.reset_slot(i, i, 0, c.num_tokens)
    return core


def load_policy(policy: str, device: str = "cpu"):
    """"random" -> None; "default" or a checkpoint path -> the follower GPT policy."""
    if policy == "random":
        return None
    from pretrain.gpt import FollowerPolicy

    return FollowerPolicy.load(policy, device=device)


def generate_followers(policy, clips: list[Clip], seed: int = 0, tokenizer="default", reward="default",
                       mode: str = "greedy", device: str = "cpu", progress: bool = True,
                       observation="tokens") -> list[FollowerMotion]:
    """Generate a follower for every clip (whole clips, all batched).

    ``policy``: "random", "default", a checkpoint path, or a loaded policy object with
    ``sample(obs, mode=...)``. The tokenizer decodes the chosen tokens as the env does.
    ``reward=None`` skips the reward terms (FollowerMotion.reward 0, no components): faster when
    only the motion is wanted. ``observation`` is the env observation the policy reads
    (``duet_env.observations.observation_factory``: "tokens", "features", ...).
    """
    from duet_env.env import load_tokenizer
    from rewards import make_reward

    tok = load_tokenizer(tokenizer, device) if isinstance(tokenizer, str) else tokenizer
    pol = load_policy(policy, device) if isinstance(policy, str) else policy
    if hasattr(pol, "stream"):
        pol = pol.stream()  # a KV cache: every slot starts at t = 0 and steps in lockstep
    history = pol.config["history"] if pol is not None else DEFAULT_HISTORY
    lookahead = pol.config["lookahead"] if pol is not None else DEFAULT_LOOKAHEAD
    bank = episode_clips(clips, tok, with_follower=False)
    core = whole_clip_core(bank, tok, history, lookahead, None if reward is None else make_reward(reward), device)
    obs_type = observation_factory(observation)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    n_max = int(core.length.max())
    joints = np.zeros((len(bank), n_max * TOKEN_FRAMES, 55, 3), np.float32)
    rot = np.zeros((len(bank), n_max * TOKEN_FRAMES, 55, 3, 3), np.float32)
    root = np.zeros((len(bank), n_max * TOKEN_FRAMES, 3), np.float32)
    tokens = np.zeros((len(bank), n_max, 5), np.int64)
    rewards = np.zeros(len(bank), np.float64)
    comp_sums: dict[str, np.ndarray] = {}
    for t in tqdm(range(n_max), desc="rollout", disable=not progress, leave=False):
        if pol is None:
            act = rng.integers(0, core.nvec, size=(len(bank), len(core.nvec)))
        else:
            act = np.asarray(pol.sample(obs_type.observe(core), mode=mode, generator=gen))
        r, comps, _ = core.step(act)
        live = t < core.length
        rewards += np.where(live, r, 0.0)
        for name, v in comps.items():
            comp_sums.setdefault(name, np.zeros(len(bank)))
            comp_sums[name] += np.where(live, v, 0.0)
        out = core.last_decoded
        sl = slice(t * TOKEN_FRAMES, (t + 1) * TOKEN_FRAMES)
        joints[:, sl] = out["joints"].cpu().numpy()
        rot[:, sl] = out["rotmats"].cpu().numpy()
        root[:, sl] = out["root"].cpu().numpy()
        tokens[:, t] = act
    result = []
    for i, c in enumerate(bank):
        n = c.num_tokens
        f = n * TOKEN_FRAMES
        poses = matrix_to_axis_angle(rot[i, :f].astype(np.float64)).reshape(f, -1).astype(np.float32)
        transl = (root[i, :f] - skeleton.REST_OFFSETS[0]).astype(np.float32)
        comps = {k: float(v[i] / n) for k, v in comp_sums.items()}
        result.append(FollowerMotion(c.name, joints[i, :f], poses, transl, tokens[i, :n], float(rewards[i] / n), comps))
    return result
