"""Training pairs: (query, positive document) from a dataset's qrels, or synthetic.

Sources
- ``qrels``: every judgement with grade > 0 of the training split (``train``) is a pair;
  validation comes from the ``dev`` split, or, where there is none, from a seeded share of
  the training *queries* (a query is never both trained on and validated on). The ``test``
  split is never read here.
- ``title-body`` (self-supervised): a document's title against its body.
- ``inverse-cloze`` (self-supervised, Lee et al. 2019): one sentence of a document against
  the rest of the document.
- ``llm``: a query written by an OpenAI-compatible chat endpoint (URL and model name; the
  key is read from an environment variable and never written anywhere).

Pairs are written as JSONL, one readable object a line::

    {"query_id": "q1", "doc_id": "d0", "grade": 1, "source": "qrels",
     "query": "money back for a double charge", "positive": "Refund of duplicate ..."}
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.data import Dataset
from harness.errors import HarnessError, located

SYNTHETIC_METHODS = ("title-body", "inverse-cloze", "llm")
FORBIDDEN_SPLITS = ("test",)
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


@dataclass(frozen=True)
class Pair:
    query_id: str
    doc_id: str
    query: str
    positive: str
    grade: int = 1
    source: str = "qrels"

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


@dataclass
class TrainingData:
    """The pairs to train on and the validation queries, with where each came from."""

    pairs: list[Pair]
    validation_qrels: dict[str, dict[str, int]]
    validation_queries: dict[str, str]
    description: dict[str, Any]
    # from a `harness ab pairs` file: the rows trained on, each with the file's skip-above
    # negatives (``.query``, ``.positive``, ``.negatives``), for the hard-negative pass
    # instead of mining; None for every other source
    negatives: list[Any] | None = None

    @property
    def hash(self) -> str:
        return pairs_hash(self.pairs)


def pairs_hash(pairs: list[Pair]) -> str:
    digest = hashlib.sha256()
    for pair in pairs:
        digest.update(pair.to_json().encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def _check_split(name: str, role: str) -> None:
    if name in FORBIDDEN_SPLITS:
        raise HarnessError(f"the {name!r} split is held out for evaluation and never used for {role}")


def pairs_from_qrels(dataset: Dataset, split: str = "train", min_grade: int = 1) -> list[Pair]:
    """One pair per judgement of ``split`` with grade >= ``min_grade`` (and > 0)."""
    _check_split(split, "training")
    if split not in dataset.available_splits():
        available = ", ".join(dataset.available_splits()) or "none"
        raise HarnessError(
            f"{dataset.path}/qrels/{split}.tsv: no {split!r} split to train on (available: {available}); "
            "use --synthetic title-body or inverse-cloze for a corpus without training queries"
        )
    qrels = dataset.split(split).qrels  # raises a one-line error on an empty split
    floor = max(1, min_grade)
    pairs = [
        Pair(qid, doc_id, dataset.queries[qid].text, dataset.corpus[doc_id].content, grade, "qrels")
        for qid, rels in qrels.items()
        for doc_id, grade in rels.items()
        if grade >= floor
    ]
    if not pairs:
        raise HarnessError(f"{dataset.path}/qrels/{split}.tsv: split {split!r} has no judgement with grade >= {floor}: nothing to train on")
    return pairs


def training_data(
    dataset: Dataset,
    train_split: str = "train",
    validation_split: str | None = "dev",
    validation_share: float = 0.1,
    seed: int = 42,
    min_grade: int = 1,
    pairs: list[Pair] | None = None,
    max_pairs: int | None = None,
    validation_pairs: list[Pair] | None = None,
) -> TrainingData:
    """Training pairs and validation queries; the test split is never touched.

    ``pairs`` (from a file or a synthetic source) replaces the qrels of ``train_split``.
    Validation is ``validation_split`` when the dataset has it, else ``validation_pairs``
    where given (the later days of logged traffic), else a seeded share of the training
    queries; a validation query's pairs are removed from training.
    """
    if validation_split:
        _check_split(validation_split, "validation")
    source = "pairs" if pairs is not None else f"qrels/{train_split}"
    all_pairs = list(pairs) if pairs is not None else pairs_from_qrels(dataset, train_split, min_grade)
    if not all_pairs:
        raise HarnessError("no training pairs")
    description: dict[str, Any] = {"source": source, "min_grade": min_grade}
    if validation_split and validation_split in dataset.available_splits():
        split = dataset.split(validation_split)
        val_qrels = {qid: dict(rels) for qid, rels in split.qrels.items()}
        val_queries = {qid: dataset.queries[qid].text for qid in val_qrels}
        train_pairs = [p for p in all_pairs if p.query_id not in val_qrels]
        description["validation"] = {"kind": "split", "split": validation_split, "hash": split.hash}
    elif validation_pairs:
        val_qrels, val_queries = {}, {}
        for p in validation_pairs:
            val_qrels.setdefault(p.query_id, {})[p.doc_id] = max(1, p.grade)
            val_queries[p.query_id] = p.query
        train_pairs = [p for p in all_pairs if p.query_id not in val_qrels]
        description["validation"] = {"kind": "logged", "rows": len(validation_pairs), "queries": len(val_qrels),
                                     "training_pairs_of_validation_queries_removed": len(all_pairs) - len(train_pairs)}
    else:
        if not 0 < validation_share < 1:
            raise HarnessError(f"validation share must be between 0 and 1, got {validation_share}")
        query_ids = sorted({p.query_id for p in all_pairs})
        if len(query_ids) < 2:
            raise HarnessError("need at least two training queries to hold a validation share out")
        rng = random.Random(seed)
        chosen = set(rng.sample(query_ids, max(1, round(len(query_ids) * validation_share))))
        val_qrels: dict[str, dict[str, int]] = {}
        val_queries: dict[str, str] = {}
        for p in all_pairs:
            if p.query_id in chosen:
                val_qrels.setdefault(p.query_id, {})[p.doc_id] = max(1, p.grade)
                val_queries[p.query_id] = p.query
        train_pairs = [p for p in all_pairs if p.query_id not in chosen]
        description["validation"] = {"kind": "share", "share": validation_share, "seed": seed, "queries": len(chosen)}
    if max_pairs is not None and len(train_pairs) > max_pairs:
        rng = random.Random(seed)
        train_pairs = sorted(rng.sample(train_pairs, max_pairs), key=lambda p: (p.query_id, p.doc_id))
        description["subsampled_to"] = max_pairs
    if not train_pairs:
        raise HarnessError("no training pairs left once the validation queries are set aside")
    description.update(
        pairs=len(train_pairs),
        queries=len({p.query_id for p in train_pairs}),
        validation_queries=len(val_qrels),
        pairs_hash=pairs_hash(train_pairs),
        dataset_hash=dataset.hash,
    )
    return TrainingData(train_pairs, val_qrels, val_queries, description)


def load_training_data(dataset: Dataset, settings: Any, pairs_file: str | Path | None = None,
                       llm: dict[str, Any] | None = None) -> TrainingData:
    """The training data a fine-tuning's ``settings`` ask for (``train_split``,
    ``validation_split``, ``validation_share``, ``seed``, ``min_grade``, ``max_pairs``,
    ``synthetic``): a pairs file, synthetic pairs (``llm`` names the endpoint), or qrels."""
    if pairs_file is not None and is_logged_pairs_file(pairs_file):
        return logged_training_data(dataset, settings, pairs_file)
    pairs = None
    if pairs_file is not None:
        pairs = read_pairs(pairs_file, dataset)
    elif settings.synthetic:
        pairs = synthetic_pairs(dataset, settings.synthetic, seed=settings.seed, max_pairs=settings.max_pairs, **(llm or {}))
    return training_data(
        dataset,
        train_split=settings.train_split,
        validation_split=settings.validation_split,
        validation_share=settings.validation_share,
        seed=settings.seed,
        min_grade=settings.min_grade,
        pairs=pairs,
        max_pairs=settings.max_pairs,
    )


# ------------------------------------------------------------------ logged clicks


def is_logged_pairs_file(path: str | Path) -> bool:
    """Whether ``path`` is a file of ``harness ab pairs`` (its first record is the header)."""
    from harness.ab.pairs import HEADER_KIND

    try:
        with open(path, encoding="utf-8") as handle:
            first = json.loads(handle.readline() or "null")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False  # read_pairs names the problem with its line
    return isinstance(first, dict) and first.get("kind") == HEADER_KIND


def copies_by_weight(weights: list[float]) -> list[int]:
    """How many times each logged row is trained on: ``max(1, round(weight / mean weight))``.

    sentence-transformers' ranking losses (MNRL and its cached form) take no per-row weight,
    so a row's debiased click weight (``harness ab pairs``: the sum over its clicks of the
    clipped inverse propensity) becomes repetition: a row weighing the mean is trained on
    once, one weighing three times the mean three times, and every row at least once (a
    light row is never dropped, so the repetition slightly favours light rows over exact
    proportionality). Deterministic: the same file gives the same rows. The batch sampler
    (NO_DUPLICATES) keeps the copies of a row in different batches, so a copy is never
    another's in-batch negative. Repetition is importance weighting by replication, the
    standard way to apply IPS weights with a loss that takes none (Joachims, Swaminathan
    and Schnabel, WSDM 2017, weigh each click's loss by 1 / propensity)."""
    mean = sum(weights) / len(weights)
    return [max(1, round(w / mean)) for w in weights]


def logged_training_data(dataset: Dataset, settings: Any, path: str | Path) -> TrainingData:
    """Training data from a ``harness ab pairs`` file: its ``train`` rows, each repeated by
    :func:`copies_by_weight`, with their skip-above negatives for the hard-negative pass;
    validation as the trainer does (the dataset's validation split, else the file's
    ``validation`` rows); the card's description cites the file's store, window, debiasing
    and ``rows_sha256``."""
    from harness.ab.pairs import read_pairs_file

    logged = read_pairs_file(path, dataset)
    rows = logged.split("train")
    if not rows:
        raise located(path, 1, "the pairs file has no 'train' row to train on (only validation rows)")
    training = training_data(
        dataset, validation_split=settings.validation_split, validation_share=settings.validation_share,
        seed=settings.seed, pairs=[r.pair for r in rows], max_pairs=settings.max_pairs,
        validation_pairs=[r.pair for r in logged.split("validation")],
    )
    by_pair = {r.pair: r for r in rows}  # a (query, document) is one row of a split
    kept = [by_pair[p] for p in training.pairs]
    copies = copies_by_weight([r.weight for r in kept])
    repeated = [r for r, n in zip(kept, copies, strict=True) for _ in range(n)]
    header = logged.header
    with_negatives = sum(1 for r in kept if r.negatives)
    training.pairs = [r.pair for r in repeated]
    training.negatives = repeated
    training.description.update(
        source="ab-pairs",
        file=str(path),
        file_rows_sha256=header.get("rows_sha256"),
        store=header.get("store"),
        experiment=header.get("experiment"),
        variant=header.get("variant"),
        window=header.get("window"),
        debias=header.get("debias"),
        left_out=logged.left_out,
        weighting={
            "rule": "each train row repeated max(1, round(weight / mean weight)) times (harness.train.pairs.copies_by_weight)",
            "rows": len(kept), "rows_trained": len(repeated), "max_copies": max(copies),
            "rows_repeated": sum(1 for n in copies if n > 1),
            "mean_weight": round(sum(r.weight for r in kept) / len(kept), 6),
        },
        negatives={"source": "skip-above, from the pairs file (no mining)", "rows_with_negatives": with_negatives,
                   "rows_without_negatives": len(kept) - with_negatives},
        pairs=len(repeated),
        pairs_hash=pairs_hash(training.pairs),
    )
    return training


def known_positives(dataset: Dataset, splits: list[str]) -> dict[str, set[str]]:
    """Every query's positives in ``splits`` (the test split aside): never a negative."""
    known: dict[str, set[str]] = {}
    for name in splits:
        if name in dataset.available_splits() and name not in FORBIDDEN_SPLITS:
            for qid, rels in dataset.split(name).qrels.items():
                known.setdefault(qid, set()).update(d for d, g in rels.items() if g > 0)
    return known


# ------------------------------------------------------------------ self-supervised


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text.strip()) if len(s.strip().split()) >= 3]


def synthetic_pairs(
    dataset: Dataset,
    method: str,
    seed: int = 42,
    max_pairs: int | None = None,
    url: str | None = None,
    model: str | None = None,
    key_env: str = "OPENAI_API_KEY",
) -> list[Pair]:
    """Pairs for a corpus without training queries (see the module docstring)."""
    if method not in SYNTHETIC_METHODS:
        raise HarnessError(f"unknown synthetic method {method!r} (known: {', '.join(SYNTHETIC_METHODS)})")
    rng = random.Random(seed)
    doc_ids = sorted(dataset.corpus)
    rng.shuffle(doc_ids)
    if method == "llm":
        return llm_pairs(dataset, url, model, key_env=key_env, seed=seed, max_pairs=max_pairs or 1000, doc_ids=doc_ids)
    pairs: list[Pair] = []
    for doc_id in doc_ids:
        doc = dataset.corpus[doc_id]
        if method == "title-body":
            if not doc.title.strip() or len(doc.text.split()) < 3:
                continue
            pairs.append(Pair(f"syn-tb-{doc_id}", doc_id, doc.title.strip(), doc.text.strip(), 1, "title-body"))
        else:
            sentences = _sentences(doc.text)
            if len(sentences) < 2:
                continue
            pick = rng.randrange(len(sentences))
            rest = " ".join(s for i, s in enumerate(sentences) if i != pick)
            positive = f"{doc.title} {rest}".strip() if doc.title else rest
            pairs.append(Pair(f"syn-ict-{doc_id}", doc_id, sentences[pick], positive, 1, "inverse-cloze"))
        if max_pairs is not None and len(pairs) >= max_pairs:
            break
    if not pairs:
        need = "titles and bodies" if method == "title-body" else "documents of two or more sentences"
        raise HarnessError(f"{dataset.path}: no document fits {method} (it needs {need})")
    return pairs


LLM_PROMPT = (
    "Write one short search query that a user of this knowledge base would type to find the "
    "document below. Answer with the query only.\n\nDocument:\n{document}"
)


def llm_pairs(
    dataset: Dataset,
    url: str | None,
    model: str | None,
    key_env: str = "OPENAI_API_KEY",
    seed: int = 42,
    max_pairs: int = 1000,
    doc_ids: list[str] | None = None,
    timeout: float = 30.0,
) -> list[Pair]:
    """Synthetic queries from an OpenAI-compatible ``/chat/completions`` endpoint.

    The key is read from ``key_env`` and only ever sent in the Authorization header: it is
    kept out of errors, logs, pair files and model cards.
    """
    import urllib.error
    import urllib.request

    if not url or not model:
        raise HarnessError("synthetic queries from an endpoint need both --llm-url and --llm-model")
    key = os.environ.get(key_env, "")
    endpoint = url.rstrip("/")
    if not endpoint.endswith("/chat/completions"):
        endpoint += "/chat/completions"
    ids = doc_ids or sorted(dataset.corpus)
    pairs: list[Pair] = []
    for doc_id in ids[:max_pairs]:
        doc = dataset.corpus[doc_id]
        body = json.dumps(
            {
                "model": model,
                "messages": [{"role": "user", "content": LLM_PROMPT.format(document=doc.content[:2000])}],
                "temperature": 0.7,
                "seed": seed,
            }
        ).encode()
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(endpoint, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                answer = json.loads(response.read().decode("utf-8"))
            query = str(answer["choices"][0]["message"]["content"]).strip().strip('"').splitlines()[0].strip()
        except urllib.error.HTTPError as exc:
            raise HarnessError(_redact(f"{endpoint}: the endpoint answered HTTP {exc.code} {exc.reason}", key)) from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise HarnessError(
                _redact(
                    f"{endpoint}: cannot reach the query-generation endpoint ({reason}); offline, use "
                    "--synthetic title-body or --synthetic inverse-cloze",
                    key,
                )
            ) from None
        except (KeyError, IndexError, ValueError, TypeError):
            raise HarnessError(f"{endpoint}: the answer is not an OpenAI-style chat completion") from None
        if query:
            pairs.append(Pair(f"syn-llm-{doc_id}", doc_id, query, doc.content, 1, "llm"))
    if not pairs:
        raise HarnessError(f"{endpoint}: no query was generated")
    return pairs


def _redact(text: str, key: str) -> str:
    return text.replace(key, "***") if key else text


# ------------------------------------------------------------------ files


def write_pairs(path: str | Path, pairs: list[Pair]) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        for pair in pairs:
            handle.write(pair.to_json() + "\n")
    os.replace(tmp, target)
    return target


def read_pairs(path: str | Path, dataset: Dataset) -> list[Pair]:
    """Pairs from a JSONL file, each checked against the dataset (one-line errors).

    A pair names a document of the corpus (``doc_id``) and either a query of the dataset
    (``query_id``) or, for synthetic pairs, carries its ``query`` text. ``positive``
    defaults to the document's content.
    """
    source = Path(path)
    if not source.is_file():
        raise HarnessError(f"{source}: pairs file does not exist")
    if is_logged_pairs_file(source):
        from harness.ab.pairs import read_pairs_file

        return [r.pair for r in read_pairs_file(source, dataset).split("train")]
    pairs: list[Pair] = []
    with open(source, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise located(source, lineno, f"bad JSON: {exc.msg}") from None
            if not isinstance(record, dict) or "doc_id" not in record:
                raise located(source, lineno, "expected an object with 'doc_id' and 'query_id' or 'query'")
            doc_id = str(record["doc_id"])
            if doc_id not in dataset.corpus:
                raise located(source, lineno, f"unknown document id {doc_id!r} (not in {dataset.path}/corpus)")
            query_id = str(record.get("query_id", ""))
            query = record.get("query")
            if query_id in dataset.queries:
                query = query or dataset.queries[query_id].text
            elif not query:
                raise located(source, lineno, f"unknown query id {query_id!r} and no 'query' text")
            elif not query_id:
                query_id = f"syn-{hashlib.sha1(str(query).encode()).hexdigest()[:12]}"
            grade = record.get("grade", 1)
            if not isinstance(grade, int) or grade < 1:
                raise located(source, lineno, f"grade must be a positive integer, got {grade!r}")
            positive = record.get("positive") or dataset.corpus[doc_id].content
            pairs.append(Pair(query_id, doc_id, str(query), str(positive), grade, str(record.get("source", "file"))))
    if not pairs:
        raise HarnessError(f"{source}: no pairs in the file")
    return pairs
