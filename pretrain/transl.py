"""``python -m pretrain.transl``: train the relative-translation VQ-VAE of the tokenizer.

Same options as ``python -m pretrain.vqvae`` (``--data --config --device --out --resume --steps
--seed``); the model (duet_env.tokenizer.model.StreamVQVAE without a rotation decoder) learns the
follower-minus-leader pelvis offset in the leader's heading frame (duet_env.motion.relative_translation).
"""
from __future__ import annotations

from pretrain.vqvae.__main__ import train_main


def main(argv: list[str] | None = None) -> None:
    import sys

    train_main(list(sys.argv[1:] if argv is None else argv), ("transl",), "python -m pretrain.transl", "transl")


if __name__ == "__main__":
    main()
