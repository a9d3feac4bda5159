"""The ``mteb:local`` task: a harness ``Dataset`` split as an mteb retrieval task.

mteb's own tasks download their data from the Hugging Face Hub; this one is built from a
BEIR folder the harness has already loaded (the evaluated dataset, or the folders of
``mteb:local=PATH`` and offline ``mteb:general``), so mteb's search and scoring run
offline on exactly the documents, queries and judgements the harness measures.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

# local tasks stop at the harness's usual depth; mteb's own tasks keep their k values
LOCAL_K_VALUES = (1, 3, 5, 10, 20, 100)


def slug(text: str, limit: int = 48) -> str:
    """``text`` as a short file- and task-name-safe string (mteb puts names in paths)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_.")
    return safe[-limit:] or "model"


def local_task(dataset: Any, split: str, ignore_identical_ids: bool = False, k_values: tuple[int, ...] = LOCAL_K_VALUES) -> Any:
    """A harness ``Dataset`` split as an mteb retrieval task that loads from memory (no Hub).

    Its name carries a hash of the dataset, the split's qrels and the options, so mteb's
    result cache never mixes two versions of a folder.
    """
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.abstasks.task_metadata import TaskMetadata

    split_data = dataset.split(split)
    key = hashlib.sha256(
        f"{dataset.hash}\0{split}\0{split_data.hash}\0{int(ignore_identical_ids)}\0{k_values}".encode()
    ).hexdigest()[:12]
    name = f"HarnessLocal-{slug(dataset.name, 40)}-{slug(split, 16)}-{key}"
    metadata = TaskMetadata(
        name=name,
        dataset={"path": str(Path(dataset.path).resolve()), "revision": key},
        description=f"Local BEIR folder {dataset.path}, split {split}, wrapped by the embedding harness.",
        type="Retrieval",
        category="t2t",
        modalities=["text"],
        eval_splits=[split],
        eval_langs=["eng-Latn"],
        main_score="ndcg_at_10",
        license="not specified",
        bibtex_citation="",
    )

    class LocalBEIRTask(AbsTaskRetrieval):
        def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:  # noqa: ARG002
            if self.data_loaded:
                return
            from datasets import Dataset as HFDataset

            qrels = dataset.split(split).qrels
            corpus = HFDataset.from_dict(
                {
                    "id": list(dataset.corpus),
                    "title": [doc.title for doc in dataset.corpus.values()],
                    "text": [doc.text for doc in dataset.corpus.values()],
                }
            )
            queries = HFDataset.from_dict(
                {"id": list(qrels), "text": [dataset.queries[qid].text for qid in qrels]}
            )
            self.dataset = {
                "default": {
                    split: {
                        "corpus": corpus,
                        "queries": queries,
                        "relevant_docs": {qid: dict(rels) for qid, rels in qrels.items()},
                        "top_ranked": None,
                    }
                }
            }
            self.data_loaded = True

    LocalBEIRTask.__name__ = LocalBEIRTask.__qualname__ = "HarnessLocalTask"
    LocalBEIRTask.metadata = metadata
    LocalBEIRTask.ignore_identical_ids = ignore_identical_ids
    LocalBEIRTask.k_values = tuple(k_values)
    return LocalBEIRTask()
