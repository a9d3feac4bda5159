"""BM25 through bm25s, with its index cached on disk.

Spec: ``bm25[(option=value,...)]`` with ``k1`` (1.5), ``b`` (0.75), ``method``
(``lucene``, ``robertson``, ``atire``, ``bm25l``, ``bm25+``), ``stopwords`` (``en`` or
``none``) and ``stemmer`` (``none`` or a PyStemmer language such as ``english``).
The defaults are the Lucene settings of BEIR's published BM25 figures.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from harness.adapters.base import Retriever, Text, top_k
from harness.adapters.spec import Spec
from harness.errors import HarnessError

OPTIONS = {"k1", "b", "method", "stopwords", "stemmer"}
METHODS = ("lucene", "robertson", "atire", "bm25l", "bm25+")


class BM25Retriever(Retriever):
    def __init__(
        self,
        cache_dir: Path | None = None,
        k1: float = 1.5,
        b: float = 0.75,
        method: str = "lucene",
        stopwords: str = "en",
        stemmer: str = "none",
        spec: str = "bm25",
    ) -> None:
        super().__init__()
        if method not in METHODS:
            raise HarnessError(f"bm25: unknown method {method!r} (known: {', '.join(METHODS)})")
        if stopwords not in ("en", "none"):
            raise HarnessError(f"bm25: stopwords must be 'en' or 'none', got {stopwords!r}")
        if not (math.isfinite(k1) and k1 >= 0):
            raise HarnessError(f"bm25: k1 must be a number >= 0, got {k1}")
        if not 0 <= b <= 1:
            raise HarnessError(f"bm25: b must be between 0 and 1, got {b}")
        self.cache_dir = cache_dir
        self.k1, self.b, self.method = k1, b, method
        self.stopwords = stopwords
        self.stemmer_name = stemmer
        self.spec = spec
        self._stemmer = _stemmer(stemmer)
        self._bm25: Any = None
        self._doc_ids: list[str] = []
        self.loaded_from_cache = False

    @classmethod
    def from_spec(cls, spec: Spec, cache_dir: Path) -> "BM25Retriever":
        if spec.value is not None or spec.args:
            raise HarnessError(f"bm25 takes only options, e.g. bm25(k1=1.2,stemmer=english): {spec}")
        spec.check_options(OPTIONS)
        return cls(
            cache_dir=cache_dir,
            k1=_float(spec, "k1", 1.5),
            b=_float(spec, "b", 0.75),
            method=spec.option("method", "lucene") or "lucene",
            stopwords=spec.option("stopwords", "en") or "en",
            stemmer=spec.option("stemmer", "none") or "none",
            spec=str(spec),
        )

    def _tokenize(self, texts: list[str]) -> list[list[str]]:
        import bm25s

        return bm25s.tokenize(
            texts,
            stopwords=self.stopwords if self.stopwords != "none" else None,
            stemmer=self._stemmer,
            return_ids=False,
            show_progress=False,
        )

    def _key(self, corpus: Mapping[str, Text]) -> str:
        import bm25s

        digest = hashlib.sha256()
        digest.update(repr((bm25s.__version__, self.k1, self.b, self.method, self.stopwords, self.stemmer_name)).encode())
        for doc_id, doc in corpus.items():
            digest.update(doc_id.encode() + b"\0" + doc.content.encode() + b"\0")
        return digest.hexdigest()[:24]

    def _index(self, corpus: Mapping[str, Text]) -> None:
        import bm25s

        self._doc_ids = list(corpus)
        folder = self.cache_dir / "bm25" / self._key(corpus) if self.cache_dir else None
        if folder is not None and (folder / "complete").is_file():
            try:
                self._bm25 = bm25s.BM25.load(str(folder), load_corpus=False)
                self.loaded_from_cache = True
                return
            except Exception:
                shutil.rmtree(folder, ignore_errors=True)
        self._bm25 = bm25s.BM25(k1=self.k1, b=self.b, method=self.method)
        self._bm25.index(self._tokenize([doc.content for doc in corpus.values()]), show_progress=False)
        if folder is not None:
            tmp = folder.with_name(f".{folder.name}.{uuid.uuid4().hex}")
            self._bm25.save(str(tmp))
            (tmp / "complete").write_text("ok")
            if folder.exists():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                os.replace(tmp, folder)

    def _search_one(self, query_id: str, text: str, k: int) -> dict[str, float]:
        tokens = self._tokenize([text])[0]
        known = [token for token in tokens if token in self._bm25.vocab_dict]
        if not known:
            return {}
        scores = self._bm25.get_scores(known)
        rows = np.flatnonzero(scores > 0)  # a document sharing no query term is not retrieved
        if len(rows) > k:
            # every document scoring at least the k-th best competes for the cut, so tied
            # documents at the boundary are cut by the one ranking order, not by position
            kth_best = np.partition(scores[rows], len(rows) - k)[len(rows) - k]
            rows = rows[scores[rows] >= kth_best]
        return top_k({self._doc_ids[row]: float(scores[row]) for row in rows}, k)

    def describe(self) -> dict[str, Any]:
        import bm25s

        return {
            "spec": self.spec,
            "kind": "bm25",
            "library": f"bm25s {bm25s.__version__}",
            "k1": self.k1,
            "b": self.b,
            "method": self.method,
            "stopwords": self.stopwords,
            "stemmer": self.stemmer_name,
            "index_from_cache": self.loaded_from_cache,
        }


def _stemmer(name: str) -> Any:
    if name == "none":
        return None
    import Stemmer

    try:
        return Stemmer.Stemmer(name)
    except KeyError:
        raise HarnessError(f"bm25: unknown stemmer language {name!r} (PyStemmer: {', '.join(Stemmer.algorithms())})") from None


def _float(spec: Spec, key: str, default: float) -> float:
    raw = spec.option(key)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError:
        raise HarnessError(f"{spec}: option {key}={raw!r} must be a number") from None
