"""Training losses, one recipe per loss: a function of the model and the run's settings
that returns sentence-transformers' loss and the label the card records.

A new loss is one more function here and a name in ``BI_ENCODER_LOSSES`` or
``CROSS_ENCODER_LOSSES`` (the ``--loss`` choices); the trainers take whatever recipe they
are given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.errors import HarnessError

Recipe = Callable[[Any, Any], tuple[Any, str]]


def multiple_negatives_ranking(model: Any, settings: Any) -> tuple[Any, str]:
    """In-batch negatives (and any hard negatives in the row's further columns)."""
    from sentence_transformers.sentence_transformer import losses

    return losses.MultipleNegativesRankingLoss(model), "MultipleNegativesRankingLoss"


def cached_multiple_negatives_ranking(model: Any, settings: Any) -> tuple[Any, str]:
    """MNRL with GradCache: a batch of ``batch_size`` in the memory of ``mini_batch_size``."""
    from sentence_transformers.sentence_transformer import losses

    loss = losses.CachedMultipleNegativesRankingLoss(model, mini_batch_size=settings.mini_batch_size)
    return loss, f"CachedMultipleNegativesRankingLoss(mini_batch_size={settings.mini_batch_size})"


def triplet(model: Any, settings: Any) -> tuple[Any, str]:
    """One negative a row, cosine distance, margin 0.3."""
    from sentence_transformers.sentence_transformer import losses

    loss = losses.TripletLoss(model, distance_metric=losses.TripletDistanceMetric.COSINE, triplet_margin=0.3)
    return loss, "TripletLoss(cosine, margin=0.3)"


BI_ENCODER_LOSSES: dict[str, Recipe] = {
    "mnrl": multiple_negatives_ranking,
    "cmnrl": cached_multiple_negatives_ranking,
    "triplet": triplet,
}
NEEDS_NEGATIVES = ("triplet",)


def matryoshka(model: Any, inner: tuple[Any, str], dims: tuple[int, ...]) -> tuple[Any, str]:
    """Wrap a loss in MatryoshkaLoss so the first ``dims`` dimensions are trained too."""
    from sentence_transformers.sentence_transformer import losses

    full = model.get_embedding_dimension()
    ordered = sorted(set(dims), reverse=True)
    if ordered[0] > full:
        raise HarnessError(f"Matryoshka dimension {ordered[0]} exceeds the model's {full}")
    loss, label = inner
    return losses.MatryoshkaLoss(model, loss, matryoshka_dims=ordered), f"MatryoshkaLoss({label}, dims={ordered})"


def bi_encoder_loss(model: Any, settings: Any, with_negatives: bool) -> tuple[Any, str]:
    """The loss ``settings.loss`` names, wrapped in MatryoshkaLoss when ``settings.matryoshka_dims``.

    A pass without negatives (pass 1) trains a loss that needs them with in-batch MNRL
    instead, and the label records it.
    """
    name = settings.loss
    if name in NEEDS_NEGATIVES and not with_negatives:
        name = "mnrl"
    chosen = BI_ENCODER_LOSSES[name](model, settings)
    return matryoshka(model, chosen, settings.matryoshka_dims) if settings.matryoshka_dims else chosen


def lambda_loss(model: Any, settings: Any) -> tuple[Any, str]:
    """The reranker's listwise loss: each query's positive and its mined negatives as one
    list, LambdaLoss with the NDCG-Loss2++ weighting (sentence-transformers' default, after
    Wang et al., "The LambdaLoss Framework for Ranking Metric Optimization", CIKM 2018).
    Only the order within a query's list counts, so a new head's constant output costs
    nothing to unlearn (BCE spends its first steps fitting the bias)."""
    from sentence_transformers.cross_encoder.losses import LambdaLoss

    return LambdaLoss(model), "LambdaLoss(NDCGLoss2PPScheme)"


def binary_cross_entropy(model: Any, settings: Any) -> tuple[Any, str]:
    """The reranker's loss: one logit a (query, document) pair against its 0/1 label, the
    positives weighted by the negatives per positive so both classes weigh the same."""
    import torch
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    weight = settings.num_negatives
    return BinaryCrossEntropyLoss(model, pos_weight=torch.tensor(float(weight))), f"BinaryCrossEntropyLoss(pos_weight={weight})"


CROSS_ENCODER_LOSSES: dict[str, Recipe] = {
    "lambda": lambda_loss,
    "bce": binary_cross_entropy,
}
