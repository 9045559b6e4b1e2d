"""Self-fed follower history for GPT training (parallel scheduled sampling).

Teacher forcing shows the GPT the ground truth's previous follower tokens; rolled out, it sees its
own. Where the two differ the GPT was never trained: a habit that teacher forcing rewards —
"continue what the history is doing" — becomes self-confirming. The measured case: during a
ChaCha leader's solo spot turn the ground-truth follower counter-rotates in the leader's frame;
teacher-forced, the history already shows the rotation, so the GPT predicts it from the history
(cross-entropy on those steps as low as anywhere) and ignores the leader's turn; rolled out, its
own history does not rotate, so neither does she, and the leader carries her round him
(GPT_CARD.md, "How this recipe was found").

:func:`self_fed_history` replaces a share ``probability`` of the follower history tokens with the
model's own greedy predictions of them, from one extra forward pass without gradients over the
same window (Duckworth et al., "Parallel Scheduled Sampling", 2019; Bengio et al., "Scheduled
Sampling for Sequence Prediction with Recurrent Neural Networks", NeurIPS 2015). The targets stay
the ground truth, so the GPT learns to return to the dance from its own slips. Padding (before
the episode start) is never replaced. ``train.self_feed`` (config) is the final share; training
raises it linearly from 0 over the first half of the steps (:func:`self_feed_share`).
"""
from __future__ import annotations

import torch

from .model import FollowerGPT


def self_feed_share(final: float, step: int, total: int) -> float:
    """The share of the history replaced at ``step`` of ``total``: linear from 0 to ``final`` over
    the first half of training, then ``final``."""
    if final <= 0:
        return 0.0
    return float(final) * min(1.0, step / max(1.0, 0.5 * total))


@torch.no_grad()
def self_fed_history(model: FollowerGPT, music: torch.Tensor, leader: torch.Tensor, follower: torch.Tensor,
                     probability: float, pad: torch.Tensor, generator: torch.Generator | None = None
                     ) -> torch.Tensor:
    """``follower`` (B, h, 5) with a share ``probability`` of its tokens (each stream and time
    drawn apart; pad ids kept) replaced by the model's greedy predictions of them.

    The model's positions predict, per arch: streaming — positions are times t−h+1 … t and the
    history holds tokens t−h … t−1, so history index i ≥ 1 is predicted at position i − 1;
    window — positions are times t−h … t, so history index i is predicted at position i.
    """
    if probability <= 0:
        return follower
    logits = model(music, leader, follower)
    pred = torch.stack([lg.argmax(-1) for lg in logits], dim=-1)  # (B, positions, 5)
    own = follower.clone()
    if model.streaming:
        own[:, 1:] = pred[:, :-1]
    else:
        own = pred[:, :follower.shape[1]]
    draw = torch.rand(follower.shape, generator=generator, device=follower.device) < probability
    keep = ~draw | (follower == pad)
    return torch.where(keep, follower, own)
