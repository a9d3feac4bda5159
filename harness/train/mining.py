"""Hard-negative mining around sentence-transformers' ``mine_hard_negatives``.

The mining itself is sentence-transformers' (FAISS search, ``range_min``/``range_max``,
known positives excluded, ``relative_margin``, optional cross-encoder rescoring); this
module adds what users miss around it:

- document embeddings go through the harness's embedding cache (``adapters.cache``), in
  the namespace the ``dense`` retriever uses, so a corpus embedded by ``harness eval`` is
  not embedded again for mining and vice versa. (``mine_hard_negatives``'s own
  ``cache_folder`` keys on the *base* model's name, so a fine-tuned model would be served
  its base model's vectors: it is not used.) Queries are few and encoded each time.
- every negative is mapped back to its document id; a negative that is a known positive
  of its query (all grades > 0 of every split read) is dropped after mining as well, which
  catches duplicate texts and synthetic pairs whose positive is not the document's text;
- statistics (how many candidates the margin removed, score distributions of positives,
  negatives and their difference) are returned, not only printed;
- an audit: N mined negatives beside their query and positive with both scores, and the
  candidates the margin removed (the likely false negatives), as a Markdown file.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.data import Dataset
from harness.errors import HarnessError
from harness.train.pairs import Pair


@dataclass
class MiningConfig:
    range_min: int = 0
    range_max: int = 50
    relative_margin: float | None = 0.05
    absolute_margin: float | None = None
    num_negatives: int = 1
    sampling_strategy: str = "top"
    max_score: float | None = None
    batch_size: int = 32
    use_faiss: bool = True
    cross_encoder: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class MinedExample:
    query_id: str
    doc_id: str
    query: str
    positive: str
    negative_ids: list[str]
    negatives: list[str]
    positive_score: float
    negative_scores: list[float]

    def to_json(self) -> str:
        return json.dumps(
            {
                "query_id": self.query_id,
                "doc_id": self.doc_id,
                "negative_ids": self.negative_ids,
                "positive_score": round(self.positive_score, 6),
                "negative_scores": [round(s, 6) for s in self.negative_scores],
                "query": self.query,
                "positive": self.positive,
                "negatives": self.negatives,
            },
            ensure_ascii=False,
        )


@dataclass
class MiningResult:
    examples: list[MinedExample]
    stats: dict[str, Any]
    removed_by_margin: list[dict[str, Any]] = field(default_factory=list)


class CachedEncoder:
    """A SentenceTransformer whose ``encode_document`` goes through the harness cache.

    ``mine_hard_negatives`` only calls ``encode_document``, ``encode_query``, ``device``,
    ``get_embedding_dimension``, ``similarity`` and ``similarity_pairwise``; everything
    else is delegated unchanged.
    """

    def __init__(self, model: Any, cache_dir: Path | None) -> None:
        self._model = model
        self._cache_dir = cache_dir
        self.encoded_documents = 0
        self.cached_documents = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def encode_document(self, texts: list[str], prompt: str | None = None, batch_size: int = 32, show_progress_bar: bool = True, **_: Any) -> np.ndarray:
        from harness.adapters.cache import EmbeddingCache
        from harness.adapters.models import fingerprint
        from harness.progress import enabled

        def encode(batch: list[str]) -> np.ndarray:
            return self._model.encode(
                batch, prompt=prompt or None, batch_size=batch_size, normalize_embeddings=True,
                convert_to_numpy=True, show_progress_bar=enabled(),
            )

        if self._cache_dir is None:
            vectors, fresh = encode(list(texts)), len(texts)
        else:
            cache = EmbeddingCache(self._cache_dir, fingerprint(self._model), prompt or "", self._model.max_seq_length)
            vectors, fresh = cache.embed(list(texts), encode)
        self.encoded_documents += fresh
        self.cached_documents += len(texts) - fresh
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_query(self, texts: list[str], prompt: str | None = None, batch_size: int = 32, **_: Any) -> np.ndarray:
        from harness.progress import enabled

        vectors = self._model.encode(
            list(texts), prompt=prompt or None, batch_size=batch_size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=enabled(),
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


_SKIPPED = re.compile(r"Skipped ([\d,]+) potential negatives \(([\d.]+)%\) due to the (\w+) of")
_MISSING = re.compile(r"Could not find enough negatives for (\d+) samples")


def _call_miner(pairs: list[Pair], corpus_texts: list[str], encoder: Any, cross_encoder: Any, config: MiningConfig, relative_margin: float | None) -> tuple[Any, str]:
    from datasets import Dataset as HFDataset
    from sentence_transformers.util import mine_hard_negatives

    hf = HFDataset.from_dict({"query": [p.query for p in pairs], "positive": [p.positive for p in pairs]})
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        mined = mine_hard_negatives(
            hf,
            encoder,
            anchor_column_name="query",
            positive_column_name="positive",
            corpus=corpus_texts,
            cross_encoder=cross_encoder,
            range_min=config.range_min,
            range_max=config.range_max,
            relative_margin=relative_margin,
            absolute_margin=config.absolute_margin,
            max_score=config.max_score,
            num_negatives=config.num_negatives,
            sampling_strategy=config.sampling_strategy,
            output_format="triplet",
            output_scores=True,
            batch_size=config.batch_size,
            use_faiss=config.use_faiss,
            verbose=True,
        )
    return mined, printed.getvalue()


def mine(
    pairs: list[Pair],
    dataset: Dataset,
    model: Any,
    config: MiningConfig | None = None,
    cache_dir: Path | None = None,
    audit: int = 0,
    seed: int = 42,
    extra_positives: dict[str, set[str]] | None = None,
) -> MiningResult:
    """Mine hard negatives for ``pairs`` over the whole corpus of ``dataset`` with ``model``.

    ``model`` is a loaded SentenceTransformer. ``extra_positives`` (query id -> doc ids)
    adds positives the pairs do not carry (e.g. other splits' judgements).
    """
    config = config or MiningConfig()
    if not pairs:
        raise HarnessError("no pairs to mine negatives for")
    if config.range_min < 0 or config.range_max <= config.range_min:
        raise HarnessError(f"need 0 <= range_min < range_max, got {config.range_min} and {config.range_max}")
    if config.num_negatives < 1 or config.num_negatives > config.range_max - config.range_min:
        raise HarnessError(f"num_negatives must be between 1 and range_max - range_min ({config.range_max - config.range_min})")
    if config.relative_margin is not None and not 0 <= config.relative_margin < 1:
        raise HarnessError(f"relative_margin must be in [0, 1), got {config.relative_margin}")
    random.seed(seed)
    import torch

    torch.manual_seed(seed)

    cross_encoder = None
    if config.cross_encoder:
        from harness.adapters.models import load_cross_encoder

        cross_encoder = load_cross_encoder(config.cross_encoder)

    corpus_ids = list(dataset.corpus)
    corpus_texts = [dataset.corpus[d].content for d in corpus_ids]
    text_to_id: dict[str, str] = {}
    for doc_id, text in zip(corpus_ids, corpus_texts):
        text_to_id.setdefault(text, doc_id)
    # a synthetic positive (e.g. a body without its title) maps to its source document
    for p in pairs:
        text_to_id.setdefault(p.positive, p.doc_id)

    known: dict[str, set[str]] = {}
    for p in pairs:
        known.setdefault(p.query, set()).add(p.doc_id)
    for qid, docs in (extra_positives or {}).items():
        if qid in dataset.queries:
            known.setdefault(dataset.queries[qid].text, set()).update(docs)
    query_id_of = {p.query: p.query_id for p in pairs}
    pair_of = {(p.query, p.positive): p for p in pairs}

    # mine_hard_negatives masks only the positives it is given; ask for as many spare
    # negatives as a query has other known positives, so that dropping those still leaves
    # num_negatives (the same as excluding them before the top candidates are taken)
    from dataclasses import replace

    in_pairs: dict[str, set[str]] = {}
    for p in pairs:
        in_pairs.setdefault(p.query, set()).add(p.doc_id)
    spare = max((len(docs - in_pairs.get(query, set())) for query, docs in known.items()), default=0)
    request = min(config.range_max - config.range_min, config.num_negatives + spare)
    encoder = CachedEncoder(model, cache_dir)
    started = time.perf_counter()
    mined, printed = _call_miner(pairs, corpus_texts, encoder, cross_encoder, replace(config, num_negatives=request), config.relative_margin)
    seconds = time.perf_counter() - started

    grouped: dict[tuple[str, str], MinedExample] = {}
    dropped_known = 0
    for row in mined:
        pair = pair_of.get((row["query"], row["positive"]))
        if pair is None:
            continue
        negative_id = text_to_id.get(row["negative"])
        if negative_id is None:
            continue
        if negative_id in known.get(row["query"], set()):
            dropped_known += 1
            continue
        key = (pair.query_id, pair.doc_id)
        example = grouped.get(key)
        if example is None:
            example = grouped[key] = MinedExample(pair.query_id, pair.doc_id, pair.query, pair.positive, [], [], float(row["scores"][0]), [])
        if len(example.negative_ids) >= config.num_negatives:
            continue  # a spare, not needed
        example.negative_ids.append(negative_id)
        example.negatives.append(row["negative"])
        example.negative_scores.append(float(row["scores"][1]))
    examples = [grouped[(p.query_id, p.doc_id)] for p in pairs if (p.query_id, p.doc_id) in grouped]

    stats = _statistics(pairs, examples, printed, config)
    stats.update(
        seconds=round(seconds, 2),
        dropped_known_positives_after_mining=dropped_known,
        documents_encoded=encoder.encoded_documents,
        documents_from_cache=encoder.cached_documents,
        cross_encoder=config.cross_encoder,
        config=config.as_dict(),
        device=str(model.device),
    )

    removed: list[dict[str, Any]] = []
    if audit and config.relative_margin:
        # mine again without the margin (vectors now come from the cache) to see what it removed
        loose = replace(config, num_negatives=min(config.range_max - config.range_min, max(config.num_negatives, 3)))
        unfiltered, _ = _call_miner(pairs, corpus_texts, encoder, cross_encoder, loose, None)
        kept = {(e.query, n) for e in examples for n in e.negatives}
        for row in unfiltered:
            negative_id = text_to_id.get(row["negative"])
            if negative_id is None or negative_id in known.get(row["query"], set()) or (row["query"], row["negative"]) in kept:
                continue
            pos_score, neg_score = (float(s) for s in row["scores"])
            if neg_score > pos_score - abs(pos_score) * config.relative_margin:
                removed.append(
                    {
                        "query_id": query_id_of.get(row["query"], ""),
                        "query": row["query"],
                        "positive": row["positive"],
                        "candidate_id": negative_id,
                        "candidate": row["negative"],
                        "positive_score": pos_score,
                        "candidate_score": neg_score,
                    }
                )
        rng = random.Random(seed)
        rng.shuffle(removed)
        removed = removed[:audit]
    return MiningResult(examples=examples, stats=stats, removed_by_margin=removed)


def _distribution(values: list[float]) -> dict[str, float]:
    if not values:
        return {"count": 0}
    array = np.asarray(values, dtype=np.float64)
    return {
        "count": int(array.size),
        "mean": round(float(array.mean()), 4),
        "std": round(float(array.std()), 4),
        "min": round(float(array.min()), 4),
        "p25": round(float(np.percentile(array, 25)), 4),
        "median": round(float(np.median(array)), 4),
        "p75": round(float(np.percentile(array, 75)), 4),
        "max": round(float(array.max()), 4),
    }


def _statistics(pairs: list[Pair], examples: list[MinedExample], printed: str, config: MiningConfig) -> dict[str, Any]:
    skipped: dict[str, dict[str, float]] = {}
    for count, percent, reason in _SKIPPED.findall(printed):
        skipped[reason] = {"candidates": int(count.replace(",", "")), "share": round(float(percent) / 100, 4)}
    missing = _MISSING.search(printed)
    positives = [e.positive_score for e in examples]
    negatives = [s for e in examples for s in e.negative_scores]
    differences = [e.positive_score - s for e in examples for s in e.negative_scores]
    return {
        "pairs": len(pairs),
        "pairs_with_negatives": len(examples),
        "pairs_without_negatives": len(pairs) - len(examples),
        "negatives": len(negatives),
        "candidates_per_query": config.range_max - config.range_min,
        "removed_by_margin": skipped.get("relative_margin", {"candidates": 0, "share": 0.0}),
        "removed": skipped,
        "samples_short_of_negatives": int(missing.group(1)) if missing else 0,
        "scores": {
            "positive": _distribution(positives),
            "negative": _distribution(negatives),
            "difference": _distribution(differences),
        },
        "library_report": printed.strip().splitlines()[-14:],
    }


def write_mined(path: Path, result: MiningResult) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for example in result.examples:
            handle.write(example.to_json() + "\n")
    return path


def read_mined(path: Path, dataset: Dataset) -> list[MinedExample]:
    from harness.errors import located

    examples = []
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                ids = [str(i) for i in record["negative_ids"]]
                doc_id = str(record["doc_id"])
            except (json.JSONDecodeError, KeyError, TypeError):
                raise located(path, lineno, "expected a mined example (query_id, doc_id, negative_ids, ...)") from None
            for d in [doc_id, *ids]:
                if d not in dataset.corpus:
                    raise located(path, lineno, f"unknown document id {d!r}")
            examples.append(
                MinedExample(
                    str(record.get("query_id", "")), doc_id, record["query"], record["positive"], ids,
                    [dataset.corpus[i].content for i in ids], float(record.get("positive_score", 0.0)),
                    [float(s) for s in record.get("negative_scores", [0.0] * len(ids))],
                )
            )
    return examples


def _clip(text: str, words: int = 60) -> str:
    parts = text.split()
    return " ".join(parts[:words]) + (" ..." if len(parts) > words else "")


def write_audit(path: Path, result: MiningResult, n: int, seed: int = 42) -> Path:
    """N mined negatives beside query and positive, both scores, and what the margin removed."""
    rng = random.Random(seed)
    rows = [(e, i) for e in result.examples for i in range(len(e.negatives))]
    rng.shuffle(rows)
    stats = result.stats
    margin = stats["config"].get("relative_margin")
    lines = [
        "# Hard-negative audit",
        "",
        "Read each negative: if it answers the query, it is a false negative (relevant but unjudged)",
        "and training would push the model away from a right answer. Candidates removed by the margin",
        "are listed after the mined ones: they are the likeliest false negatives.",
        "",
        f"- pairs: {stats['pairs']}, with negatives: {stats['pairs_with_negatives']}, negatives mined: {stats['negatives']}",
        f"- candidates per query: ranks {stats['config']['range_min']} to {stats['config']['range_max']}",
        f"- removed by the relative margin of {margin}: {stats['removed_by_margin']['candidates']} candidates "
        f"({stats['removed_by_margin']['share']:.2%})",
        f"- known positives dropped after mining: {stats['dropped_known_positives_after_mining']}",
        "",
        "| scores | count | mean | p25 | median | p75 | min | max |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, dist in stats["scores"].items():
        if dist.get("count"):
            lines.append(f"| {name} | {dist['count']} | {dist['mean']} | {dist['p25']} | {dist['median']} | {dist['p75']} | {dist['min']} | {dist['max']} |")
    lines += ["", f"## {min(n, len(rows))} mined negatives", ""]
    for number, (example, index) in enumerate(rows[:n], start=1):
        lines += [
            f"### {number}. query {example.query_id}",
            f"- **query**: {example.query}",
            f"- **positive** `{example.doc_id}` (score {example.positive_score:.4f}): {_clip(example.positive)}",
            f"- **negative** `{example.negative_ids[index]}` (score {example.negative_scores[index]:.4f}, "
            f"gap {example.positive_score - example.negative_scores[index]:.4f}): {_clip(example.negatives[index])}",
            "",
        ]
    if result.removed_by_margin:
        lines += [f"## {len(result.removed_by_margin)} candidates the margin removed", ""]
        for number, row in enumerate(result.removed_by_margin, start=1):
            lines += [
                f"### {number}. query {row['query_id']}",
                f"- **query**: {row['query']}",
                f"- **positive** (score {row['positive_score']:.4f}): {_clip(row['positive'])}",
                f"- **removed** `{row['candidate_id']}` (score {row['candidate_score']:.4f}): {_clip(row['candidate'])}",
                "",
            ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
