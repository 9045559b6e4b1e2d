"""Fine-tune the pretrained follower GPT on the env's reward — one readable file (CleanRL style).

    python -m agents.finetune                       # off-policy memory replay, default reward, SynthDuet
    python -m agents.finetune --algo ac --reward '{"beat": 1, "contact": 1}' --out runs/ac

Both algorithms split the GPT as Bailando's actor-critic does: embeddings, look-ahead encoders
and the first half of the blocks form a frozen **state network**; the remaining blocks and the
five heads are the **policy head** being trained; a small transformer **critic** reads the
frozen state. Rollouts run in the env's batched core (:class:`duet_env.core.DuetCore`, the same
decoder and reward terms that ``DuetAccompany-v0`` and stable-baselines3 see), one episode of
``episode_tokens`` tokens per env per round.

``--algo ac`` — on-policy actor-critic (Bailando, Bailando++ §3.4)::

    δ_t = r_t + V(s_{t+1}) − V(s_t)          (γ = 1, V = 0 after the last token)
    actor  loss = − mean_t  sg(δ_t) · Σ_streams log π(a_t | s_t)
    critic loss =   mean_t  δ_t²
    alternating ``actor_iters`` actor and ``critic_iters`` critic iterations per round.

``--algo offpolicy`` (default) — memory replay (Duolando §3.4): the first round's rollouts are
kept, every round adds the current policy's rollouts to an unbounded replay memory, and each
update mixes the current rollouts with ``replay_ratio`` × as many replayed episodes sampled
with replacement. Exploration: sampled (temperature / top-k) actions, and out-of-distribution
conditions (music of another clip under the leader) for a share ``ood_share`` of episodes.
Objective, ``--objective``:

* ``td`` (default): the TD-error actor-critic above on replayed data, each token weighted by
  the clipped importance weight ρ_t = min(ρ̄, π(a_t|s_t) / μ(a_t|s_t)) (μ = the sampling
  distribution that produced the token, stored in the memory);
* ``target``: Duolando's reward-target objective, R_t = r̃_t + 0.2 r̃_{t+1}, y_t = σ(3 R_t),
  loss = − log(1.001 − |p_t − y_t|) with p_t the policy's probability of the taken token, per
  stream. Departure: r̃ is the reward standardised over the batch (Duolando's rewards were
  mostly a constant +1, ours are not, so raw rewards would saturate σ).

Episodes are drawn from every train clip, or with ``--genre G`` from genre G's only (the test
clips scored before/after are then G's too; the FID reference stays the whole train split): to
teach one genre without spending four fifths of the budget on the others.

Both add ``kl_coef`` · KL(π_ref ‖ π) to the pretrained policy on the batch's states (a
departure from both papers, which had none): it keeps the motion close to the data the
tokenizer and GPT learned, so FID does not drift while the reward rises. Measured on SynthDuet
(seed 0, default reward): with a weight of 0.05 the off-policy run raised the reward but FID_k
went from 77 to 289 — the beat term (Bailando++ eq. 21) can be satisfied by jittery motion,
whose many small speed minima count as dance beats; with 1.0 FID_k stayed at 73. TD errors are divided
by their batch standard deviation before weighting the actor (scale-free learning rates).
Dropout is off throughout (the policy is in eval mode), so runs are deterministic on CPU.

Run directory (``--out``): ``checkpoint.safetensors/.json`` (policy head, critic, round, RNG
states; atomic), ``optim.pt``, ``memory.npz`` (the replay memory: per episode the clip, start,
music source, tokens, rewards and behaviour log-probabilities — observations are rebuilt from
the clip bank, so the memory stays small), ``tb/`` (TensorBoard), ``summary.json`` (config,
``before`` and ``after`` metric dicts, learning curve), ``learning_curve.png``, and
``policy/gpt.safetensors`` (the fine-tuned GPT, loadable by ``FollowerPolicy.load``).
A killed run resumes with ``--resume`` from the last completed round with nothing lost.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from agents.evaluate import rule_error_cm
from agents.rollout import generate_followers
from duet_env import checkpoint
from duet_env.atomic import atomic_save_npz, atomic_write, atomic_write_json
from duet_env.conventions import FOLLOWER_STREAMS, LEADER_STREAMS, MUSIC_TOKEN_DIM, TOKEN_FRAMES
from duet_env.core import DuetCore
from duet_env.data import load_split
from duet_env.episodes import EpisodeClip, episode_clips, load_dataset_clips
from duet_env.metrics import ReferenceStats, evaluate_duets
from duet_env.observations import TokensObservation
from duet_env.tokenizer import Tokenizer
from duet_env.tokens import window_length
from pretrain.gpt import FollowerPolicy
from pretrain.gpt.stream import FollowerStream
from pretrain.gpt.policy import load_model
from rewards import make_reward


def _opt(default, help: str, **argparse_kwargs):
    """A config field with its command-line help (the CLI is generated from the dataclass)."""
    return field(default=default, metadata={"help": help, **argparse_kwargs})


@dataclass
class FinetuneConfig:
    algo: str = _opt("offpolicy", "algorithm", choices=("offpolicy", "ac"))
    objective: str = _opt("td", "offpolicy only: the objective", choices=("td", "target"))
    reward: object = _opt("default", "a name, a JSON {name: weight} dict, or a composite (the env's reward=)")
    data: str = _opt("synth", '"synth" or a DD100-layout folder')
    genre: str = _opt("", 'train and score on this genre\'s clips only, e.g. "HipHop" ("" = every genre)')
    policy: str = _opt("default", "pretrained GPT: shipped name or checkpoint folder")
    tokenizer: str = _opt("default", "tokenizer: shipped name or checkpoint folder")
    steps: int = _opt(8192, "environment steps (tokens generated) for training")
    num_envs: int = _opt(16, "episodes per round")
    episode_tokens: int = _opt(32, "tokens per episode (32 ≈ 4.3 s)")
    lr: float = _opt(5e-5, "policy-head learning rate")
    critic_lr: float = _opt(1e-3, "critic learning rate")
    kl_coef: float = _opt(1.0, "KL(π_ref ‖ π) weight; without it FID_k drifts (see module doc)")
    temperature: float = _opt(0.7, "sampling temperature of the rollouts (greedy is evaluated)")
    top_k: int = _opt(0, "rollout top-k (0 = no top-k restriction)")
    ood_share: float = _opt(0.25, "offpolicy: share of episodes with another clip's music")
    replay_ratio: int = _opt(1, "offpolicy: replayed episodes per current episode")
    rho_clip: float = _opt(1.0, "offpolicy td: importance-weight clip ρ̄")
    epochs: int = _opt(1, "passes over a round's batch")
    actor_iters: int = _opt(1, "actor steps per minibatch")
    critic_iters: int = _opt(1, "critic steps per minibatch (after the actor's)")
    minibatch: int = _opt(16, "episodes per gradient step")
    grad_clip: float = _opt(1.0, "gradient-norm clip")
    eval_clips: int = _opt(0, "test clips scored before/after (0 = all)")
    eval_tokens: int = _opt(192, "tokens scored per test clip (192 ≈ 25.6 s; 0 = whole clips)")
    seed: int = _opt(0, "seed of rollouts, critic initialisation and sampling")
    device: str = _opt("auto", '"auto", "cpu" or "cuda"')
    threads: int = _opt(2, "torch CPU threads")

    @property
    def rounds(self) -> int:
        return max(1, self.steps // (self.num_envs * self.episode_tokens))


# ------------------------------------------------------------------------------------------
# critic
class Critic(nn.Module):
    """V(s): a 2-layer transformer over the frozen state's tokens at the decision position
    (one token per stream), mean-pooled, then a linear read-out."""

    def __init__(self, width: int, n_streams: int, hidden: int = 64, layers: int = 2):
        super().__init__()
        self.n_streams = n_streams
        self.inp = nn.Linear(width, hidden)
        layer = nn.TransformerEncoderLayer(hidden, 4, 2 * hidden, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out = nn.Linear(hidden, 1)

    @classmethod
    def for_model(cls, model) -> "Critic":
        """The critic of a FollowerGPT's state (its width, its streams)."""
        return cls(model.config["width"], model.n_streams)

    def forward(self, state: torch.Tensor, decisions: int = 1) -> torch.Tensor:
        """V of the last ``decisions`` positions of a (B, S·L, D) state -> (B · decisions,),
        episode-major (a window state has one decision; an episode sequence has E)."""
        b, d = state.shape[0], state.shape[-1]
        last = state.view(b, self.n_streams, -1, d)[:, :, -decisions:]  # (B, S, n, D)
        last = last.permute(0, 2, 1, 3).reshape(-1, self.n_streams, d)
        return self.out(self.encoder(self.inp(last)).mean(1)).squeeze(-1)


# ------------------------------------------------------------------------------------------
# replay memory
class EpisodeMemory:
    """Episodes as compact records; observations are rebuilt from the clip bank on demand."""

    FIELDS = ("clip", "start", "music_clip", "music_start", "round", "actions", "rewards", "logp_mu")

    def __init__(self):
        self.data = {k: [] for k in self.FIELDS}

    def __len__(self) -> int:
        return len(self.data["clip"])

    def add(self, episodes: dict) -> None:
        for k in self.FIELDS:
            self.data[k].extend(list(episodes[k]))

    def take(self, idx) -> dict:
        return {k: np.stack([self.data[k][i] for i in idx]) for k in self.FIELDS}

    def sample(self, n: int, rng: np.random.Generator) -> dict:
        """n episodes drawn uniformly with replacement."""
        return self.take(rng.integers(0, len(self), size=n))

    def save(self, path: Path) -> None:
        arrays = {k: np.stack(v) if v else np.zeros(0) for k, v in self.data.items()}
        atomic_save_npz(path, arrays)

    @classmethod
    def load(cls, path: Path) -> "EpisodeMemory":
        mem = cls()
        with np.load(path) as z:
            for k in cls.FIELDS:
                mem.data[k] = list(z[k]) if z[k].size else []
        return mem


def episode_windows(bank: list[EpisodeClip], ep: dict, history: int, lookahead: int, pad_leader, pad_follower,
                    sequences: bool = False, leader_turn=None):
    """Rebuild the "tokens" observations of every step of every episode in ``ep``.

    Returns music (N·E, W, 216) float32, leader (N·E, W, 4) int64, follower (N·E, H, 5) int64,
    exactly as :class:`duet_env.observations.TokensObservation` shows them during the rollout.
    ``leader_turn`` (clip index -> its turn (N_tokens, 4), :meth:`DuetCore.clip_leader_turn`):
    for a GPT with config ``leader_turn``; music then carries each token's turn appended,
    (…, 220), as :meth:`pretrain.gpt.model.FollowerGPT.music_input` builds it.

    ``sequences=True`` (streaming-architecture GPT) returns instead one window per episode, of
    history H − 1 + E: music (N, H + E + A, 216), leader (N, H + E + A, 4), follower
    (N, H − 1 + E, 5), whose last E positions are exactly the episode's E decisions
    (pretrain/gpt/stream.py), so a single forward pass scores a whole episode.
    """
    n, e = ep["actions"].shape[:2]
    w = window_length(history, lookahead)
    turn_dim = 0 if leader_turn is None else TOKEN_FRAMES
    music = np.zeros((n, history + e + lookahead, MUSIC_TOKEN_DIM + turn_dim), np.float32)
    leader = np.empty((n, history + e + lookahead, len(LEADER_STREAMS)), np.int64)
    leader[:] = pad_leader
    follower = np.empty((n, history + e, len(FOLLOWER_STREAMS)), np.int64)
    follower[:] = pad_follower
    for i in range(n):
        c, s = bank[ep["clip"][i]], int(ep["start"][i])
        m, ms = bank[ep["music_clip"][i]], int(ep["music_start"][i])
        music[i, history:history + e, :MUSIC_TOKEN_DIM] = m.music_tokens[ms:ms + e]
        if turn_dim:  # the leader's own turn, also under another clip's music
            music[i, history:history + e, MUSIC_TOKEN_DIM:] = leader_turn(int(ep["clip"][i]))[s:s + e]
        leader[i, history:history + e] = c.leader_tokens[s:s + e]
        follower[i, history:] = ep["actions"][i]
    if sequences:  # the padded arrays are the window of the last decision, history H − 1 + E
        return music, leader, np.ascontiguousarray(follower[:, :-1])
    sw = np.lib.stride_tricks.sliding_window_view
    mus = sw(music, w, axis=1)[:, :e].transpose(0, 1, 3, 2).reshape(n * e, w, -1)
    lead = sw(leader, w, axis=1)[:, :e].transpose(0, 1, 3, 2).reshape(n * e, w, -1)
    fol = sw(follower, history, axis=1)[:, :e].transpose(0, 1, 3, 2).reshape(n * e, history, -1)
    return np.ascontiguousarray(mus), np.ascontiguousarray(lead), np.ascontiguousarray(fol)


# ------------------------------------------------------------------------------------------
# the learner
def split_policy_head(model) -> tuple[int, list[nn.Parameter]]:
    """Freeze the GPT's state network; return the split block index and the policy head's
    parameters (made trainable).

    Bailando's split: embeddings, look-ahead encoders and the first half of the blocks are the
    frozen state network; the remaining blocks, the final LayerNorm and the five heads are the
    policy head. ``agents.sb3.GPTPolicy`` calls this too, so stable-baselines3's algorithms train
    exactly the parameters that ``--algo offpolicy`` and ``--algo ac`` train.
    """
    split = model.n_blocks // 2
    model.requires_grad_(False)
    head = [*model.blocks[split:].parameters(), *model.ln_f.parameters(), *model.heads.parameters()]
    for p in head:
        p.requires_grad_(True)
    return split, head


class Learner:
    """Policy head + critic on a frozen state network, with the reference policy for the KL."""

    def __init__(self, model, cfg: FinetuneConfig, device: torch.device):
        self.model = model.to(device).eval()
        self.device = device
        self.split, self.trainable = split_policy_head(self.model)
        # The reference policy: a frozen copy of the initial model (only its head part is run).
        self.ref_model = copy.deepcopy(self.model).requires_grad_(False)
        self.critic = Critic.for_model(self.model).to(device)
        self.opt = torch.optim.Adam(self.trainable, lr=cfg.lr)
        self.copt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr)

    def state(self, music, leader, follower) -> torch.Tensor:
        with torch.no_grad():
            return self.model.state(music, leader, follower, self.split)

    def logits(self, state, decisions: int = 1) -> list[torch.Tensor]:
        """Per-stream logits (B · decisions, K_s) of the last ``decisions`` positions of ``state``."""
        return _last_positions(self.model.head(state, self.split, last_only=decisions == 1), decisions)

    def ref_logits(self, state, decisions: int = 1) -> list[torch.Tensor]:
        with torch.no_grad():
            return _last_positions(self.ref_model.head(state, self.split, last_only=decisions == 1), decisions)

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {f"policy/{k}": v for k, v in self.model.state_dict().items()}
        out.update({f"critic/{k}": v for k, v in self.critic.state_dict().items()})
        return out

    def load_tensors(self, t: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict({k[7:]: v for k, v in t.items() if k.startswith("policy/")})
        self.critic.load_state_dict({k[7:]: v for k, v in t.items() if k.startswith("critic/")})


def _last_positions(logits: list[torch.Tensor], decisions: int) -> list[torch.Tensor]:
    if decisions == 1:
        return logits
    return [lg[:, -decisions:].reshape(-1, lg.shape[-1]) for lg in logits]


def log_prob_taken(logits: list[torch.Tensor], actions: torch.Tensor) -> torch.Tensor:
    """Σ_streams log π(a_s | s) for actions (N, 5)."""
    return sum(F.log_softmax(lg, -1).gather(-1, actions[:, i:i + 1]).squeeze(-1) for i, lg in enumerate(logits))


def kl_to_reference(logits, ref_logits) -> torch.Tensor:
    """Mean over states of Σ_streams KL(π_ref ‖ π)."""
    return sum(F.kl_div(F.log_softmax(lg, -1), F.log_softmax(rl, -1), log_target=True, reduction="batchmean")
               for lg, rl in zip(logits, ref_logits))


def td_errors(values: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
    """δ_t = r_t + V(s_{t+1}) − V(s_t) over (N, E) with V = 0 after the last step (γ = 1)."""
    nxt = torch.cat([values[:, 1:], torch.zeros_like(values[:, :1])], dim=1)
    return rewards + nxt - values


def actor_loss(logp: torch.Tensor, delta: torch.Tensor, rho: torch.Tensor | None = None) -> torch.Tensor:
    """Policy-gradient loss − mean(ρ · sg(δ) · log π(a|s)); δ and ρ carry no gradient."""
    w = delta.detach() if rho is None else rho.detach() * delta.detach()
    return -(w * logp).mean()


def critic_loss(values: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
    """Mean squared TD error over (N, E)."""
    return td_errors(values, rewards).pow(2).mean()


def reward_target_loss(logits, actions, rewards: torch.Tensor) -> torch.Tensor:
    """Duolando's objective: R_t = r̃_t + 0.2 r̃_{t+1}, y = σ(3R), loss = −log(1.001 − |p − y|)."""
    r = (rewards - rewards.mean()) / (rewards.std() + 1e-6)
    nxt = torch.cat([r[:, 1:], torch.zeros_like(r[:, :1])], dim=1)
    y = torch.sigmoid(3.0 * (r + 0.2 * nxt)).reshape(-1)
    loss = 0.0
    for i, lg in enumerate(logits):
        p = F.softmax(lg, -1).gather(-1, actions[:, i:i + 1]).squeeze(-1)
        loss = loss + (-torch.log(1.001 - (p - y).abs())).mean()
    return loss / len(logits)


# ------------------------------------------------------------------------------------------
# rollouts
def sample_tokens(logits: list[torch.Tensor], temperature: float, top_k: int, gen: torch.Generator):
    """Sample one token per stream; returns tokens (B, 5) and the sampling log-prob Σ log μ."""
    toks, logp = [], 0.0
    for lg in logits:
        lg = lg.float() / temperature
        if top_k and top_k < lg.shape[-1]:
            kth = lg.topk(top_k, dim=-1).values[:, -1:]
            lg = lg.masked_fill(lg < kth, float("-inf"))
        lp = F.log_softmax(lg, -1)
        a = torch.multinomial(lp.exp(), 1, generator=gen)
        toks.append(a[:, 0])
        logp = logp + lp.gather(-1, a).squeeze(-1)
    return torch.stack(toks, -1), logp


def collect(learner: Learner, core: DuetCore, cfg: FinetuneConfig, rng: np.random.Generator,
            gen: torch.Generator, round_i: int, ood_share: float) -> dict:
    """One episode per env slot with the current policy; returns the memory records."""
    n, e = core.num_envs, cfg.episode_tokens
    rec = {k: np.zeros(n, np.int64) for k in ("clip", "start", "music_clip", "music_start", "round")}
    rec["round"][:] = round_i
    eligible = [i for i, c in enumerate(core.clips) if c.num_tokens >= e]
    for i in range(n):
        c = int(rng.choice(eligible))
        s = int(rng.integers(0, core.clips[c].num_tokens - e + 1))
        mc, ms = c, s
        if rng.random() < ood_share:
            mc = int(rng.choice(eligible))
            ms = int(rng.integers(0, core.clips[mc].num_tokens - e + 1))
        core.reset_slot(i, c, s, e, music_from=(mc, ms))
        rec["clip"][i], rec["start"][i], rec["music_clip"][i], rec["music_start"][i] = c, s, mc, ms
    obs_type = TokensObservation()
    stream = FollowerStream(learner.model)  # KV cache: the episodes run in lockstep from their start
    actions = np.zeros((n, e, len(FOLLOWER_STREAMS)), np.int64)
    rewards = np.zeros((n, e), np.float32)
    logp = np.zeros((n, e), np.float32)
    b = n
    for t in range(e):
        obs = obs_type.observe(core)
        with torch.no_grad():
            music = learner.model.music_input(torch.from_numpy(obs["music"]).view(b, core.W, -1).to(learner.device),
                                              torch.from_numpy(obs["leader_turn"]))
            leader = torch.from_numpy(obs["leader"]).view(b, -1, len(LEADER_STREAMS)).to(learner.device)
            follower = torch.from_numpy(obs["follower"]).view(b, -1, len(FOLLOWER_STREAMS)).to(learner.device)
            logits = stream.logits(music, leader, follower)  # = learner.logits(learner.state(...))
            a, lp = sample_tokens(logits, cfg.temperature, cfg.top_k, gen)
        a = a.cpu().numpy()
        r, _, _ = core.step(a)
        actions[:, t], rewards[:, t], logp[:, t] = a, r, lp.cpu().numpy()
    rec.update(actions=actions, rewards=rewards, logp_mu=logp)
    return rec


# ------------------------------------------------------------------------------------------
# updates
def _batch_tensors(learner: Learner, core: DuetCore, ep: dict):
    """Observations of the episodes ``ep`` (one window per step, or one sequence per episode for
    a streaming GPT: :func:`episode_windows`), actions (N·E, 5), rewards and μ's log-probs (N, E)."""
    mus, lead, fol = episode_windows(core.clips, ep, core.history, core.lookahead,
                                     core.leader_pad, core.follower_pad, sequences=learner.model.streaming,
                                     leader_turn=core.clip_leader_turn if learner.model.leader_turn else None)
    d = learner.device
    return (torch.from_numpy(mus).to(d), torch.from_numpy(lead).to(d), torch.from_numpy(fol).to(d),
            torch.from_numpy(ep["actions"].reshape(-1, len(FOLLOWER_STREAMS))).to(d),
            torch.from_numpy(ep["rewards"]).to(d), torch.from_numpy(ep["logp_mu"]).to(d))


def update(learner: Learner, core: DuetCore, ep: dict, cfg: FinetuneConfig, rng: np.random.Generator,
           off_policy: bool) -> dict[str, float]:
    """``cfg.epochs`` passes over minibatches of the episodes ``ep``; on each minibatch the frozen
    state is computed once, then ``actor_iters`` actor steps alternate with ``critic_iters``
    critic steps (the actor's TD errors use the critic as it stands before its own steps)."""
    n, e = ep["actions"].shape[:2]
    stats = {"actor_loss": [], "critic_loss": [], "kl": [], "rho": []}
    for _ in range(cfg.epochs):
        order = rng.permutation(n)
        for lo in range(0, n, cfg.minibatch):
            idx = order[lo:lo + cfg.minibatch]
            mb = {k: v[idx] for k, v in ep.items()}
            music, leader, follower, actions, rewards, logp_mu = _batch_tensors(learner, core, mb)
            m = len(idx)
            d = e if learner.model.streaming else 1  # decisions per state row
            state = learner.state(music, leader, follower)
            ref = learner.ref_logits(state, d)
            for _ in range(cfg.actor_iters):
                logits = learner.logits(state, d)
                logp = log_prob_taken(logits, actions)
                kl = kl_to_reference(logits, ref)
                if off_policy and cfg.objective == "target":
                    pg = reward_target_loss(logits, actions, rewards)
                else:
                    with torch.no_grad():
                        delta = td_errors(learner.critic(state, d).view(m, e), rewards).reshape(-1)
                        delta = delta / (delta.std() + 1e-6)
                        rho = torch.ones_like(delta)
                        if off_policy:
                            rho = torch.exp(logp.detach() - logp_mu.reshape(-1)).clamp(max=cfg.rho_clip)
                    pg = actor_loss(logp, delta, rho)
                    stats["rho"].append(rho.mean().item())
                loss = pg + cfg.kl_coef * kl
                learner.opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(learner.trainable, cfg.grad_clip)
                learner.opt.step()
                stats["actor_loss"].append(pg.item())
                stats["kl"].append(kl.item())
            for _ in range(cfg.critic_iters):
                loss = critic_loss(learner.critic(state, d).view(m, e), rewards)
                learner.copt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(learner.critic.parameters(), cfg.grad_clip)
                learner.copt.step()
                stats["critic_loss"].append(loss.item())
    return {k: float(np.mean(v)) for k, v in stats.items() if v}


# ------------------------------------------------------------------------------------------
# evaluation
def evaluate(model, test_clips, reference, cfg: FinetuneConfig, tokenizer) -> dict[str, float]:
    """Greedy followers on held-out clips: every reward component + the dance metrics."""
    policy = FollowerPolicy(model, model.config, device=next(model.parameters()).device)
    return evaluate_policy(policy, test_clips, reference, cfg.reward, cfg.seed, tokenizer)


def evaluate_policy(policy, test_clips, reference, reward, seed: int, tokenizer,
                    observation: str = "tokens") -> dict[str, float]:
    """:func:`evaluate` for any policy :func:`agents.rollout.generate_followers` takes ("random",
    a loaded policy, an SB3 adapter on ``observation``): agents.benchmark scores every algorithm
    with this one function, so their rows are comparable."""
    out = generate_followers(policy, test_clips, seed=seed, tokenizer=tokenizer, reward=reward,
                             mode="greedy", progress=False, observation=observation)
    row = {"reward": float(np.mean([o.reward for o in out]))}
    for name in out[0].components:
        row[f"r_{name}"] = float(np.mean([o.components[name] for o in out]))
    duets = [(o.joints, c.leader.joints[:len(o.joints)], c.beat_frames[c.beat_frames < len(o.joints)])
             for o, c in zip(out, test_clips)]
    metrics = evaluate_duets(duets, reference)
    row.update({k: float(metrics[k]) for k in ("BAS", "BED", "FID_k", "FID_cd", "contact_freq", "penetration")})
    # distance to the ground-truth follower: on SynthDuet the follower's genre rule made it
    row["rule_error_cm"] = rule_error_cm(test_clips, [o.joints for o in out])
    return row


def ground_truth_row(test_clips, reference, cfg: FinetuneConfig) -> dict[str, float]:
    duets = [(c.follower.joints, c.leader.joints, c.beat_frames) for c in test_clips]
    m = evaluate_duets(duets, reference)
    return {**{k: float(m[k]) for k in ("BAS", "BED", "FID_k", "FID_cd", "contact_freq", "penetration")},
            "rule_error_cm": 0.0}


# ------------------------------------------------------------------------------------------
# run directory
def save_run(out: Path, learner: Learner, cfg: FinetuneConfig, state: dict, memory: EpisodeMemory | None) -> None:
    """Memory first, then optimiser, then the checkpoint JSON last: the JSON names the round
    that everything on disk is consistent with."""
    if memory is not None:
        memory.save(out / "memory.npz")
    atomic_write(out / "optim.pt", lambda tmp: torch.save(
        {"opt": learner.opt.state_dict(), "copt": learner.copt.state_dict()}, tmp))
    checkpoint.save(out, "checkpoint", learner.tensors(), dataclasses.asdict(cfg), state)


def export_policy(out: Path, model) -> None:
    checkpoint.save(out / "policy", "gpt", model.state_dict(), model.config, {"finetuned": True})


def plot_curve(path: Path, curve: list[dict]) -> None:
    import matplotlib  # here, not at the top: choosing the Agg backend must not affect importers

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([c["round"] for c in curve], [c["train_reward"] for c in curve], label="train episodes (sampled)")
    ax.set_xlabel("round")
    ax.set_ylabel("mean reward per token")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


def format_table(before: dict, after: dict, gt: dict) -> str:
    keys = list(before)
    lines = [f"{'':<16}{'before':>12}{'after':>12}{'ground truth':>14}"]
    for k in keys:
        g = gt.get(k)
        lines.append(f"{k:<16}{before[k]:>12.4f}{after[k]:>12.4f}{'' if g is None else f'{g:>14.4f}'}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------
def run(cfg: FinetuneConfig, out: Path, resume: bool = False, progress: bool = True,
        stop_after: int | None = None, score: bool = True) -> dict | None:
    """Train, evaluate before/after, write the run directory. ``stop_after`` ends the process
    of training after that many rounds as a kill would (used by the resume test). ``score=False``
    skips the before/after/ground-truth evaluations (``None`` in the summary): agents.benchmark
    scores every algorithm itself, on its task's test episodes."""
    torch.set_num_threads(cfg.threads)
    device = checkpoint.resolve_device(cfg.device)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_json = out / "checkpoint.json"
    if ckpt_json.exists() and not resume:
        raise SystemExit(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    if resume and ckpt_json.exists():
        saved = json.loads(ckpt_json.read_text())["config"]
        ours = dataclasses.asdict(cfg)
        defaults = dataclasses.asdict(FinetuneConfig())  # a field newer than the run: its default
        diff = {k: (saved.get(k, defaults[k]), ours[k]) for k in ours
                if k not in ("device", "threads") and saved.get(k, defaults[k]) != ours[k]}
        if diff:
            raise SystemExit(f"--resume: the run in {out} was made with a different config: "
                             + "; ".join(f"{k}: saved {a!r}, now {b!r}" for k, (a, b) in diff.items()))

    tok = Tokenizer.load(cfg.tokenizer, device=str(device))
    model, gpt_cfg, _ = load_model(cfg.policy, device)
    train_clips, train_key = load_dataset_clips(cfg.data, "train", progress=False)
    test_clips = scored_test_clips(cfg)
    # The FID reference stays the whole train split (as agents.evaluate); only the episodes are one genre's.
    bank = episode_clips(clips_of_genre(train_clips, cfg.genre, "train", cfg.data), tok, cache_key=train_key)
    if max(c.num_tokens for c in bank) < cfg.episode_tokens:
        raise SystemExit(f"no training clip has {cfg.episode_tokens} tokens; lower --episode-tokens")
    reference = (ReferenceStats.from_duets([(c.follower.joints, c.leader.joints, c.beat_frames) for c in train_clips])
                 if score else None)
    core = DuetCore(bank, tok, cfg.num_envs, model.history, model.lookahead, cfg.episode_tokens,
                    make_reward(cfg.reward), device)
    torch.manual_seed(cfg.seed)  # before the critic is initialised
    learner = Learner(model, cfg, device)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    memory = EpisodeMemory() if cfg.algo == "offpolicy" else None
    state = {"round": 0, "curve": []}

    if resume and ckpt_json.exists():
        tensors, _, state = checkpoint.load(out, "checkpoint", device)
        learner.load_tensors(tensors)
        opts = torch.load(out / "optim.pt", weights_only=True)
        learner.opt.load_state_dict(opts["opt"])
        learner.copt.load_state_dict(opts["copt"])
        rng.bit_generator.state = state["numpy_rng"]
        gen.set_state(torch.tensor(state["torch_gen"], dtype=torch.uint8))
        torch.set_rng_state(torch.tensor(state["torch_rng"], dtype=torch.uint8))
        if memory is not None:
            memory = EpisodeMemory.load(out / "memory.npz")
        print(f"resuming {out} at round {state['round']} / {cfg.rounds}")
    else:
        print("fine-tuning config:\n" + json.dumps(dataclasses.asdict(cfg), indent=2, default=str))
        state["before"] = evaluate(learner.model, test_clips, reference, cfg, tok) if score else None
        state["ground_truth"] = ground_truth_row(test_clips, reference, cfg) if score else None

    writer = SummaryWriter(str(out / "tb"))
    bar = tqdm(range(state["round"], cfg.rounds), initial=state["round"], total=cfg.rounds,
               desc=f"finetune[{cfg.algo}]", disable=not progress)
    t0 = time.time()
    for r in bar:
        ep = collect(learner, core, cfg, rng, gen, r, cfg.ood_share if cfg.algo == "offpolicy" else 0.0)
        if memory is not None:
            memory.add(ep)
            if r > 0 and cfg.replay_ratio > 0:
                replay = memory.sample(cfg.replay_ratio * cfg.num_envs, rng)
                batch = {k: np.concatenate([ep[k], replay[k]]) for k in ep}
            else:
                batch = ep
        else:
            batch = ep
        stats = update(learner, core, batch, cfg, rng, off_policy=cfg.algo == "offpolicy")
        train_reward = float(ep["rewards"].mean())
        state["curve"].append({"round": r + 1, "train_reward": train_reward, **stats})
        for k, v in {"train_reward": train_reward, **stats}.items():
            writer.add_scalar(k, v, r + 1)
        bar.set_postfix(reward=f"{train_reward:.3f}", kl=f"{stats.get('kl', 0):.3f}")
        state.update(round=r + 1, numpy_rng=rng.bit_generator.state, torch_gen=gen.get_state().tolist(),
                     torch_rng=torch.get_rng_state().tolist())
        save_run(out, learner, cfg, state, memory)
        if stop_after is not None and r + 1 >= stop_after:
            writer.close()
            return None
    writer.close()
    state["train_seconds"] = state.get("train_seconds", 0.0) + time.time() - t0
    if score and ("after" not in state or state.get("after_round") != state["round"]):
        state["after"] = evaluate(learner.model, test_clips, reference, cfg, tok)
        state["after_round"] = state["round"]
    state.setdefault("after", None)
    export_policy(out, learner.model)
    plot_curve(out / "learning_curve.png", state["curve"])
    summary = {"config": dataclasses.asdict(cfg), "before": state["before"], "after": state["after"],
               "ground_truth": state["ground_truth"], "curve": state["curve"],
               "train_seconds": state["train_seconds"]}
    atomic_write_json(out / "summary.json", summary)
    save_run(out, learner, cfg, {k: v for k, v in state.items()}, memory)
    if score:
        print(format_table(state["before"], state["after"], state["ground_truth"]))
    return summary


def clips_of_genre(clips: list, genre: str, split: str, data: str) -> list:
    """The clips of ``genre`` ("" = all of them); SystemExit naming the problem for a genre the
    project does not know or one the split has no clip of."""
    if not genre:
        return clips
    from duet_env.genres import GENRES

    if genre not in GENRES:
        raise SystemExit(f"--genre {genre!r}: unknown genre; known: {', '.join(GENRES)}")
    kept = [c for c in clips if c.genre == genre]
    if not kept:
        raise SystemExit(f"--genre {genre}: the {split} split of {data} has no {genre} clip "
                         f"(its genres: {', '.join(sorted({c.genre for c in clips}))})")
    return kept


def scored_test_clips(cfg: FinetuneConfig) -> list:
    """The test clips a run is scored on: its genre's (``genre``), the first ``eval_clips``, each cut
    to ``eval_tokens`` tokens."""
    clips = clips_of_genre(load_split(cfg.data, "test", progress=False), cfg.genre, "test", cfg.data)
    if cfg.eval_clips:
        clips = clips[:cfg.eval_clips]
    if cfg.eval_tokens:
        clips = [c.slice(0, cfg.eval_tokens * TOKEN_FRAMES) for c in clips]
    return clips


def reevaluate(out: Path) -> dict:
    """Score a finished run again with today's metrics: the pretrained policy (``before``), the
    fine-tuned one in ``out/policy`` (``after``) and the ground truth, on the run's own test
    clips, reward and seed; rewrites ``summary.json`` (curve and wall time kept). For re-measuring
    published tables when a metric is added or changed, without training again."""
    summary_path = out / "summary.json"
    if not summary_path.is_file() or not (out / "policy").is_dir():
        raise SystemExit(f"--reevaluate: {out} holds no finished run (summary.json and policy/ are written at the end)")
    summary = json.loads(summary_path.read_text())
    cfg = FinetuneConfig(**summary["config"])
    torch.set_num_threads(cfg.threads)
    device = checkpoint.resolve_device(cfg.device)
    tok = Tokenizer.load(cfg.tokenizer, device=str(device))
    train_clips = load_split(cfg.data, "train", progress=False)
    test_clips = scored_test_clips(cfg)
    reference = ReferenceStats.from_duets([(c.follower.joints, c.leader.joints, c.beat_frames) for c in train_clips])
    summary["before"] = evaluate(load_model(cfg.policy, device)[0], test_clips, reference, cfg, tok)
    summary["after"] = evaluate(load_model(out / "policy", device)[0], test_clips, reference, cfg, tok)
    summary["ground_truth"] = ground_truth_row(test_clips, reference, cfg)
    atomic_write_json(summary_path, summary)
    print(format_table(summary["before"], summary["after"], summary["ground_truth"]))
    return summary


def build_parser() -> argparse.ArgumentParser:
    """The command line: one ``--flag`` per :class:`FinetuneConfig` field, plus --out/--resume."""
    ap = argparse.ArgumentParser(prog="python -m agents.finetune", description=__doc__.split("\n\n")[0])
    for f in dataclasses.fields(FinetuneConfig):
        meta = dict(f.metadata)
        # reward (annotated ``object``): a name or a JSON dict; its default is a name, so the
        # annotation decides, not the default's type
        kind = _reward_arg if f.type in (object, "object") else type(f.default)
        ap.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=kind, default=f.default,
                        help=f"{meta.pop('help')} (default: {f.default})", **meta)
    ap.add_argument("--out", default="runs/finetune", help="run directory")
    ap.add_argument("--resume", action="store_true", help="continue the run in --out")
    ap.add_argument("--reevaluate", action="store_true",
                    help="score the finished run in --out again (before, after, ground truth) with the current "
                         "metrics, using the run's saved config; no training")
    return ap


def _reward_arg(text: str):
    return json.loads(text) if text.strip().startswith("{") else text


def parse_args(argv=None) -> tuple[FinetuneConfig, Path, bool]:
    a = vars(build_parser().parse_args(argv))
    a.pop("reevaluate")
    out, resume = Path(a.pop("out")), a.pop("resume")
    return FinetuneConfig(**a), out, resume


def main(argv=None) -> int:
    if "--reevaluate" in (sys.argv[1:] if argv is None else argv):
        reevaluate(Path(build_parser().parse_args(argv).out))
        return 0
    cfg, out, resume = parse_args(argv)
    run(cfg, out, resume)
    return 0


if __name__ == "__main__":
    sys.exit(main())
