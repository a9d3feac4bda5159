"""The retriever spec grammar."""

from __future__ import annotations

import pytest

from harness.adapters import build_retriever
from harness.adapters.spec import Spec
from harness.errors import HarnessError


@pytest.mark.parametrize(
    "text",
    [
        "bm25",
        "bm25(k1=1.2,stemmer=english)",
        "dense",
        "dense:models/ft-minilm",
        "dense:default(dim=64,index=hnsw)",
        "hybrid(bm25,dense:default)",
        "hybrid(bm25,dense,method=wsum,norm=min-max,weights=0.3;0.7)",
        "rerank(models/ce,top=100,first=hybrid(bm25,dense))",
        "dense:'/path/with,comma (and parens)'",
    ],
)
def test_round_trip_is_canonical(text: str) -> None:
    spec = Spec.parse(text)
    assert Spec.parse(str(spec)) == spec
    assert str(Spec.parse(str(spec))) == str(spec)


def test_whitespace_is_ignored() -> None:
    assert str(Spec.parse(" hybrid( bm25 , dense:x , method = rrf ) ")) == "hybrid(bm25,dense:x,method=rrf)"


def test_structure() -> None:
    spec = Spec.parse("rerank(ce,top=50,first=hybrid(bm25,dense:m))")
    assert spec.kind == "rerank" and str(spec.args[0]) == "ce"
    assert spec.option("top") == "50"
    first = spec.option_spec("first")
    assert first is not None and first.kind == "hybrid" and [str(a) for a in first.args] == ["bm25", "dense:m"]


@pytest.mark.parametrize(
    ("text", "column", "message"),
    [
        ("hybrid(bm25,dense", 18, "expected ',' or ')'"),
        ("hybrid()", 8, "empty argument list"),
        ("bm25(k1=1.2,dense)", 13, "positional argument after an option"),
        ("dense:'unterminated", 7, "unterminated quote"),
        ("bm25 extra", 6, "unexpected text"),
        ("", 1, "expected a name"),
    ],
)
def test_errors_point_at_the_column(text: str, column: int, message: str) -> None:
    with pytest.raises(HarnessError) as info:
        Spec.parse(text)
    assert f"column {column}: {message}" in str(info.value)
    assert "^" in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sparse", "unknown retriever kind 'sparse'"),
        ("bm25(k2=1)", "unknown option"),
        ("bm25(k1=high)", "must be a number"),
        ("dense(dim=ten)", "must be an integer"),
        ("dense(index=lsh)", "unknown index 'lsh'"),
        ("hybrid(bm25)", "at least two retrievers"),
        ("hybrid(bm25,dense,weights=1)", "1 weights for 2 retrievers"),
        ("rerank(ce)", "needs a first stage"),
        ("bm25(stemmer=klingon)", "unknown stemmer language"),
    ],
)
def test_bad_retriever_specs(text: str, message: str, tmp_path) -> None:
    with pytest.raises(HarnessError, match=message):
        build_retriever(text, tmp_path)


def test_nesting_deeper_than_the_limit_is_an_error_not_a_crash() -> None:
    from harness.adapters.spec import MAX_NESTING

    def nested(depth: int) -> str:
        return "hybrid(bm25," * depth + "dense" + ")" * depth

    assert str(Spec.parse(nested(MAX_NESTING))) == nested(MAX_NESTING)
    with pytest.raises(HarnessError, match=f"column {len('hybrid(bm25,') * MAX_NESTING + 7}: argument lists nested deeper than {MAX_NESTING}"):
        Spec.parse(nested(300))  # a RecursionError before the limit
    with pytest.raises(HarnessError, match="nested deeper"):
        Spec.parse("rerank(ce,first=" * 40 + "bm25" + ")" * 40)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bm25(k2=1)", "bm25: unknown option(s) k2 in bm25(k2=1) (known: b, k1, method, stemmer, stopwords)"),
        ("dense(dims=8,idx=flat)", "dense: unknown option(s) dims, idx in dense(dims=8,idx=flat) "
         "(known: backend, batch, dim, doc_prompt, index, m, max_len, nlist, nprobe, prompts, quant, query_prompt, refine)"),
        ("hybrid(bm25,dense,k=60)", "hybrid: unknown option(s) k in hybrid(bm25,dense,k=60) (known: depth, method, norm, rrf_k, weights)"),
        ("rerank(ce,first=bm25,depth=5)", "rerank: unknown option(s) depth in rerank(ce,first=bm25,depth=5) (known: batch, first, fuse, top)"),
        ("filter(first=bm25,depth=3)", "filter: unknown option(s) depth in filter(first=bm25,depth=3) (known: field, first, where)"),
        ("rerank(ce,top=5)", "rerank needs a first stage, e.g. first=bm25: rerank(ce,top=5)"),
        ("filter(field=subdomain)", "filter needs a first stage, e.g. first=dense: filter(field=subdomain)"),
    ],
)
def test_option_and_first_stage_errors_are_one_message_for_every_kind(text: str, message: str, tmp_path) -> None:
    """``Spec.check_options`` and ``Spec.first_stage``: the same wording in every adapter."""
    with pytest.raises(HarnessError) as caught:
        build_retriever(text, tmp_path)
    assert str(caught.value) == message
