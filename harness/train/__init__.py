"""Training: pairs, hard-negative mining and audit, bi-encoder and cross-encoder fine-tuning.

Python entry points: ``harness.train.finetune.finetune`` (bi-encoder, two passes by
default) and ``harness.train.finetune.finetune_cross_encoder`` (reranker); both return a
``FinetuneResult`` with the output path and the card (validation metrics before/after).
"""
