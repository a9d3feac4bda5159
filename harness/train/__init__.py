"""Training: pairs, hard-negative mining and audit, bi-encoder and cross-encoder fine-tuning.

One module a concept: ``pairs`` (training data), ``mining`` (hard negatives),
``evaluators`` (validation with the harness's metrics), ``losses`` (one recipe a loss),
``trainer`` (the trainer set-up both fine-tunings share), ``checkpoints`` (the partial
folder, resume), ``cards`` (the model card and training log), ``bi_encoder`` (the two
passes) and ``cross_encoder`` (the reranker).

Python entry points: ``harness.train.bi_encoder.finetune`` (bi-encoder, two passes by
default) and ``harness.train.cross_encoder.finetune_cross_encoder`` (reranker); both
return a ``FinetuneResult`` with the output path and the card (validation metrics
before/after).
"""
