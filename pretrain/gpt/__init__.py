"""The follower GPT (pretrained policy): model, data windows, training, evaluation, policy API.

``python -m pretrain.gpt`` trains; ``python -m pretrain.gpt evaluate ...`` evaluates;
``python -m pretrain.gpt export ...`` strips a training checkpoint to its weights.
"""
from .config import encoder_bands, load_config, with_codebook_sizes
from .model import FollowerGPT
from .policy import FollowerPolicy, load_model

__all__ = ["FollowerGPT", "FollowerPolicy", "load_model", "load_config", "with_codebook_sizes", "encoder_bands"]
