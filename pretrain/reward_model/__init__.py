"""The learned reward (E3D2): ranked demonstrations without human labels and a Bradley–Terry fit.

``python -m pretrain.reward_model`` rolls out the pretrained GPT at rising corruption
(:mod:`.demos`), fits :class:`rewards.learned.RewardModel` to the ranking
(:func:`train_reward_model`, data-parallel under torchrun) and evaluates it on held-out clips (:mod:`.evaluate`).
The fitted model is the ``learned`` reward term.
"""

from .train import train_reward_model

__all__ = ["train_reward_model"]
