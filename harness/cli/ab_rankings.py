"""Rankings of a dataset's queries by two or more variants, from retriever specs or TREC
run files: what ``harness ab simulate --data`` serves and ``harness ab interleave --data``
interleaves."""

from __future__ import annotations

from pathlib import Path

from harness.errors import HarnessError


def dataset_rankings(data, retrievers, runs, split, cache_dir, variants):
    """The rankings of a dataset's judged queries by each variant, from retrievers (named
    after --variant or their specs) or TREC run files (``VARIANT=FILE``), with the qrels
    and the query texts."""
    from harness.data import load_dataset

    from harness.ab.simulate import served_queries

    ds = load_dataset(data)
    qrels, texts, _ = served_queries(ds, split)  # the split's queries and the dataset's unlabelled pool
    rankings: dict[str, dict[str, list[str]]] = {}
    specs = list(retrievers)
    names = list(variants)
    for run in runs:
        if "=" not in run:
            raise HarnessError(f"--run {run!r}: expected VARIANT=FILE")
        name, path = run.split("=", 1)
        rankings[name] = read_trec_run(Path(path))
    if specs:
        from harness.adapters import build_retriever

        spec_names = names[len(rankings):] if names else specs
        if len(spec_names) != len(specs):
            raise HarnessError("give one --variant name per --retriever, or none")
        for name, spec in zip(spec_names, specs, strict=True):
            retriever = build_retriever(spec, cache_dir)
            retriever.build(ds.corpus)
            run = retriever.search({qid: texts[qid] for qid in texts}, k=10)
            rankings[name] = {qid: run.ranking(qid) for qid in texts}
    if len(rankings) < 2:
        raise HarnessError("simulate with --data needs at least two variants (--retriever or --run)")
    return list(rankings), rankings, qrels, texts


def read_trec_run(path: Path) -> dict[str, list[str]]:
    """A TREC run file (``qid Q0 docid rank score tag``) as qid -> doc ids in the harness's
    one ranking order (``harness.adapters.base.ranked``, trec_eval's: score descending, then
    doc id descending); the rank column is not read, as trec_eval does not read it."""
    import math

    from harness.adapters.base import ranked
    from harness.errors import located

    if not path.is_file():
        raise HarnessError(f"{path}: run file does not exist")
    scores: dict[str, dict[str, float]] = {}
    first_line: dict[tuple[str, str], int] = {}
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 6:
                raise located(path, n, f"expected 6 fields (qid Q0 docid rank score tag), got {len(parts)}")
            qid, _, doc_id, _, score_text, _ = parts
            try:
                score = float(score_text)
            except ValueError as exc:
                raise located(path, n, f"score {score_text!r} is not a number") from exc
            if not math.isfinite(score):
                raise located(path, n, f"score {score_text!r} is not a finite number")
            if (qid, doc_id) in first_line:
                raise located(path, n, f"document {doc_id!r} is listed twice for query {qid!r} (first on line {first_line[qid, doc_id]})")
            first_line[qid, doc_id] = n
            scores.setdefault(qid, {})[doc_id] = score
    return {qid: ranked(hits) for qid, hits in scores.items()}
