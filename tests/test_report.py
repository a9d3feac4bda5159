"""``harness report``: the document, HTML, Markdown and terminal outputs of every result kind."""

from __future__ import annotations

import copy
import io
import json
import re
from pathlib import Path

import pytest
from rich.console import Console

from harness.cli import main as cli_main
from harness.evaluate import evaluate
from harness.provenance import cpu_vector_extensions
from harness.reports import formatting, html, plots, terminal
from harness.reports import markdown as markdown_renderer
from harness.reports.sections import build_report
from harness.reports.terminal import print_report

SPECS = ["bm25", "bm25(k1=0.9,b=0.4)"]


@pytest.fixture(scope="module")
def eval_file(tmp_path_factory) -> Path:
    from conftest import write_beir

    root = tmp_path_factory.mktemp("report")
    data = write_beir(root / "tiny")
    evaluate(data, SPECS, ["heldout", "slice:subdomain=identity"], out=root / "eval", cache_dir=root / "cache")
    return root / "eval" / "result.json"


@pytest.fixture(scope="module")
def compare_and_gate_files(eval_file: Path) -> tuple[Path, Path]:
    """Real ``harness compare`` and ``harness gate`` results on the tiny evaluation."""
    root = eval_file.parent.parent
    cli_main(["compare", str(eval_file), "--baseline", "bm25", "--resamples", "199", "--out", str(root / "compare")])
    policy = root / "gate.toml"
    policy.write_text(
        f'baseline = "bm25"\ncandidate = "{SPECS[1]}"\nresults = ["{eval_file}"]\nn_resamples = 199\n\n'
        '[[check]]\ntype = "superiority"\nname = "better on held-out"\nsuite = "heldout"\nmetric = "ndcg@10"\n\n'
        '[[check]]\ntype = "non-inferiority"\nname = "no worse on identity"\nsuite = "slice:subdomain=identity"\n'
        'metric = "ndcg@10"\nmargin = 0.02\n\n[budgets]\np95_latency_ms = 250\n',
        encoding="utf-8",
    )
    try:
        cli_main(["gate", "--policy", str(policy), "--out", str(root / "gate")])
    except SystemExit as exc:  # the gate exits 1 (fail) or 2 (inconclusive) by design
        assert exc.code in (0, 1, 2)
    return root / "compare" / "compare.json", root / "gate" / "gate.json"


def terminal_text(report) -> str:
    buffer = io.StringIO()
    print_report(report, Console(file=buffer, width=220, color_system=None))
    return buffer.getvalue()


def write_json(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------ synthetic results of other kinds


def provenance() -> dict:
    from harness import provenance as prov

    return prov.collect(seed=0, command=["harness", "test"])


def compare_result() -> dict:
    rows = []
    for suite, diff in (("heldout:test", 0.05), ("slice:subdomain=identity", -0.01)):
        rows.append({
            "suite": suite, "metric": "ndcg@10", "baseline": "bm25", "candidate": "dense", "n": 40,
            "baseline_mean": 0.61, "candidate_mean": 0.61 + diff, "difference": diff, "ci_low": diff - 0.03,
            "ci_high": diff + 0.03, "confidence": 0.95, "sd_difference": 0.1, "effect_size": diff / 0.1,
            "p_value": 0.004 if diff > 0 else 0.6, "alternative": "two-sided", "t_test_p_value": 0.005,
            "wins": 20, "ties": 10, "losses": 10, "mde": 0.04, "mde_alpha": 0.05, "p_adjusted": 0.008 if diff > 0 else 0.6,
            "significant": diff > 0, "differences": [diff + 0.01 * ((i % 7) - 3) for i in range(40)],
            "moved": {"gains": [{"query_id": "q1", "text": "money back", "baseline": 0.2, "candidate": 0.9, "difference": 0.7}], "losses": []},
        })
    return {
        "schema_version": 1, "kind": "compare", "provenance": provenance(), "comparisons": rows,
        "pareto": {"metric": "ndcg@10", "suite": "heldout:test", "arms": [
            {"spec": "bm25", "quality": 0.61, "latency_p95_ms": 1.2, "on_front": True},
            {"spec": "dense", "quality": 0.66, "latency_p95_ms": 8.0, "on_front": True},
            {"spec": "hybrid(bm25,dense)", "quality": 0.64, "latency_p95_ms": 9.5, "on_front": False},
        ]},
    }


def ab_analysis_result() -> dict:
    days = range(5)
    cumulative = [
        {"treatment": "treatment", "metric": m, "day": d, "users": 100 * (d + 1), "effect_size": 0.03, "ci_lower": 0.01 - 0.01 / (d + 1),
         "ci_upper": 0.05 + 0.01 / (d + 1), "seq_ci_lower": -0.02 + 0.005 * d, "seq_ci_upper": 0.08 - 0.005 * d, "seq_pvalue": 0.3 / (d + 1)}
        for m in ("ctr", "abandonment") for d in days
    ]
    daily = [
        {"treatment": "treatment", "metric": m, "day": d, "effect_size": 0.05 - 0.005 * d, "effect_size_ci_lower": 0.0, "effect_size_ci_upper": 0.1 - 0.01 * d}
        for m in ("ctr", "abandonment") for d in days
    ]
    return {
        "schema_version": 1, "kind": "ab-analysis", "provenance": provenance(),
        "experiment": {"experiment_id": "exp-t", "variants": ["control", "treatment"], "traffic_split": [0.5, 0.5], "control": "control",
                       "start": "2025-01-06T00:00:00", "end": "2025-01-11T00:00:00", "primary_metric": "ctr", "guardrails": ["abandonment"],
                       "guardrail_margin": 0.02, "description": "bm25 vs dense"},
        "analysis_window": {"start": "2025-01-06T00:00:00", "end": "2025-01-11T00:00:00"},
        "options": {"alpha": 0.05, "mde": 0.02, "cuped": True, "metrics": ["ctr", "abandonment"]},
        "data_quality": {"users": 1000},
        "srm": {"users": {"control": 505, "treatment": 495}, "expected_share": {"control": 0.5, "treatment": 0.5}, "chi2": 0.1,
                "pvalue": 0.7518, "threshold": 0.001, "mismatch": False},
        "variants": {"control": {"users": 505, "queries": 4000.0, "metrics": {"ctr": 0.55, "abandonment": 0.45}},
                     "treatment": {"users": 495, "queries": 4010.0, "metrics": {"ctr": 0.58, "abandonment": 0.42}}},
        "effects": [
            {"treatment": "treatment", "metric": "ctr", "direction": 1, "control_value": 0.55, "treatment_value": 0.58, "effect_size": 0.0312,
             "effect_size_ci_lower": 0.0101, "effect_size_ci_upper": 0.0523, "rel_effect_size": 0.0567, "pvalue": 0.003, "pvalue_holm": 0.006,
             "seq_ci_lower": 0.0012, "seq_ci_upper": 0.0612, "power": {"users_needed": 9000, "days_needed": 12}},
            {"treatment": "treatment", "metric": "abandonment", "direction": -1, "control_value": 0.45, "treatment_value": 0.42,
             "effect_size": -0.03, "effect_size_ci_lower": -0.05, "effect_size_ci_upper": -0.01, "rel_effect_size": -0.066, "pvalue": 0.004,
             "pvalue_holm": 0.006},
        ],
        "daily": daily, "cumulative": cumulative, "sequential": {"method": "mSPRT", "alpha": 0.05, "horizon_days": 5},
        "source": {"db": "ab.duckdb"},
    }


def ab_decision_result(analysis: dict) -> dict:
    return {
        "schema_version": 1, "kind": "ab-decision", "provenance": provenance(), "experiment": analysis["experiment"], "analysis": analysis,
        "audit_id": "abc",
        "decision": {"decision": "promote", "variant": "treatment", "exit_code": 0, "method": "sequential", "alpha": 0.05,
                     "treatments": [{"treatment": "treatment", "decision": "promote", "reasons": ["ctr is significantly better"],
                                     "metrics": {"ctr": {"role": "primary", "control": 0.55, "treatment": 0.58, "effect_size": 0.0312,
                                                         "ci_lower": 0.0012, "ci_upper": 0.0612, "pvalue": 0.01, "pvalue_holm": 0.02,
                                                         "significantly_better": True, "significantly_worse": False, "non_inferior": True,
                                                         "margin": 0.011}}}]},
    }


def model_folder(root: Path) -> Path:
    """A fine-tuned model's folder as ``harness finetune`` writes it: training_card.json and training_log.json."""
    folder = root / "ft"
    folder.mkdir(parents=True, exist_ok=True)
    validation = {"val_ndcg@10": 0.41, "val_recall@100": 0.9, "val_mrr@10": 0.35}
    card = {
        "kind": "bi-encoder", "base_model": "all-MiniLM-L6-v2", "output": str(folder), "fingerprint": "7e9125c7138990d5",
        "dataset": {"name": "tiny", "path": "/x/tiny", "hash": "30ee0102e47c" + "0" * 52},
        "training_data": {"source": "qrels/train", "pairs": 300, "queries": 280, "validation_queries": 40, "pairs_hash": "8e2c4a215a68",
                          "validation": {"kind": "split", "split": "dev"}},
        "parameters": {"passes": "two", "loss": "mnrl", "epochs": 1, "learning_rate": 2e-05, "batch_size": 32},
        "passes": {name: {"loss": "MultipleNegativesRankingLoss", "rows": 300, "epochs_done": 1.0, "steps": 10, "batch_size": 32,
                          "seconds": 20.5, "pairs_per_second": 15.2, "best_metric": 0.41, "validation": validation} for name in ("pass1", "pass2")},
        "chosen": "pass2",
        "mining": {"pairs": 300, "pairs_with_negatives": 298, "negatives": 298, "candidates_per_query": 5,
                   "scores": {"positive": {"count": 298, "mean": 0.7, "std": 0.1, "p25": 0.6, "median": 0.7, "p75": 0.8}}},
        "validation": {"queries": 40, "corpus": "dev judged documents", "before": {"val_ndcg@10": 0.3512, "val_mrr@10": 0.3},
                       "after": {"val_ndcg@10": 0.4123, "val_mrr@10": 0.35}},
        "seconds": 61.0, "provenance": provenance(), "notes": [],
    }
    log = {"schema_version": 1, "kind": "training-log", "passes": {
        name: {"loss": "MultipleNegativesRankingLoss",
               "loss_curve": [{"step": s, "epoch": s / 10, "loss": 2.0 / (s + 1) + offset, "learning_rate": 2e-5} for s in range(1, 11)],
               "validation": [{"eval_val_ndcg@10": 0.35 + 0.01 * s, "eval_val_mrr@10": 0.3 + 0.01 * s, "step": s, "epoch": s / 10} for s in (5, 10)],
               "summary": {"train_runtime": 20.0}}
        for name, offset in (("pass1", 0.2), ("pass2", 0.0))}, "validation_history": []}
    write_json(folder / "training_card.json", card)
    write_json(folder / "training_log.json", log)
    return folder


def matryoshka_eval(eval_data: dict) -> dict:
    """The bm25 result dressed up as one dense model at three dimensions (for the dimension plot)."""
    data = copy.deepcopy(eval_data)
    base = data["retrievers"][0]
    retrievers, suites = [], data["suites"]
    for dim, shift in ((64, -0.1), (128, -0.05), (384, 0.0)):
        spec = f"dense(dim={dim})"
        retrievers.append(base | {"spec": spec, "description": {"spec": spec, "kind": "dense", "model": "all-MiniLM-L6-v2",
                                                               "fingerprint": "0123456789abcdef", "dimension": dim}})
        for suite in suites:
            first = next(iter(suite["aggregates"].values()))
            suite["aggregates"][spec] = {m: v + shift for m, v in first.items()}
            suite["intervals"][spec] = {m: [v + shift - 0.02, v + shift + 0.01] for m, v in first.items()}
            suite["recall_curve"][spec] = next(iter(suite["recall_curve"].values()))
    data["retrievers"] += retrievers
    # an MTEB suite as suites/mteb.py writes it: aggregates without intervals, mteb's own scores in details
    specs = [r["spec"] for r in retrievers]
    data["suites"].append({
        "name": "mteb:local", "kind": "mteb", "split": "test", "query_ids": ["q3", "q4"], "excluded": {},
        "per_query": {spec: {"ndcg@10": {"q3": 0.5, "q4": 0.7}} for spec in specs},
        "aggregates": {spec: {"ndcg@10": 0.6, "mteb_main_score": 0.61 + i / 100} for i, spec in enumerate(specs)},
        "intervals": {}, "recall_curve": {},
        "details": {"mteb_version": "2.26", "complete": False, "aggregation": "mean over queries",
                    "skipped_tasks": {"SciFact": "offline and its data is not in the local Hugging Face cache"},
                    "skipped_retrievers": {"bm25": "not a dense retriever: mteb evaluates embedding models"},
                    "tasks": {"tiny": {"main_score_name": "ndcg_at_10", "main_score": {spec: 0.61 + i / 100 for i, spec in enumerate(specs)},
                                       "delta_vs_base": {"base": specs[0], "main_score": {spec: i / 100 for i, spec in enumerate(specs) if i}},
                                       "from_cache": {spec: False for spec in specs}, "fingerprints": {spec: "0123456789abcdef" for spec in specs}}}},
    })
    return data


DEMO_ARMS = ["bm25", "dense", "hybrid(bm25,dense)", "rerank(demo-out/models/reranker,top=10,first=dense)",
             "dense:demo-out/models/ft-minilm", "hybrid(bm25,dense:demo-out/models/ft-minilm)"]


def demo_arms_eval(eval_data: dict) -> dict:
    """The bm25 result under the six arm names of ``harness demo`` (long specs with model paths), with
    distinct means and latencies: the legends and labels of a real demo report."""
    data = copy.deepcopy(eval_data)
    base = data["retrievers"][0]
    data["retrievers"] = [base | {"spec": spec, "latency": base["latency"] | {"p95_ms": 0.5 * 4 ** i}} for i, spec in enumerate(DEMO_ARMS)]
    for suite in data["suites"]:
        first = next(iter(suite["aggregates"]))
        aggregates, intervals, curve = suite["aggregates"][first], suite["intervals"][first], suite["recall_curve"][first]
        suite["aggregates"] = {spec: {m: v - 0.03 * i for m, v in aggregates.items()} for i, spec in enumerate(DEMO_ARMS)}
        suite["intervals"] = {spec: {m: [low - 0.03 * i, high - 0.03 * i] for m, (low, high) in intervals.items()} for i, spec in enumerate(DEMO_ARMS)}
        suite["recall_curve"] = {spec: {k: v * (1 - 0.05 * i) for k, v in curve.items()} for i, spec in enumerate(DEMO_ARMS)}
        suite["per_query"] = {spec: next(iter(suite["per_query"].values())) for spec in DEMO_ARMS}
    return data


def demo_arms_compare() -> dict:
    """Comparisons of the demo's arms with dense, on three suites and two metrics: long forest labels."""
    data = compare_result()
    row = data["comparisons"][0]
    data["comparisons"] = [row | {"candidate": spec, "suite": suite, "metric": metric, "baseline": "dense"}
                           for spec in DEMO_ARMS if spec != "dense"
                           for suite in ("heldout:test", "slice:subdomain=storage", "slice:doc-disjoint") for metric in ("ndcg@10", "recall@100")]
    return data


def outside_the_figure(fig) -> list[str]:
    """The sides of a drawn figure that some legend, label, tick label or annotation crosses."""
    fig.canvas.draw()
    drawn = fig.get_tightbbox(fig.canvas.get_renderer())  # inches, every artist that takes part in the layout
    width, height = fig.get_size_inches()
    slack = 0.5 / fig.dpi
    sides = {"left": drawn.x0 < -slack, "bottom": drawn.y0 < -slack, "right": drawn.x1 > width + slack, "top": drawn.y1 > height + slack}
    return [side for side, crossed in sides.items() if crossed]


# ------------------------------------------------------------------------------ tests


def test_eval_html_is_self_contained_with_plots_and_sortable_tables(eval_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    html.write(build_report([eval_file]), out)
    page = out.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]+src=", page), "no external scripts"
    assert not re.search(r"<link[^>]+href=", page), "no external stylesheets"
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "no network resources"
    assert "http://" not in page and "https://" not in page
    images = re.findall(r'<img src="data:image/png;base64,', page)
    assert len(images) >= 3  # metric with intervals, recall curves, quality vs latency
    assert 'class="sortable"' in page and "sortBy" in page
    assert page.count("<figcaption>") == len(images)
    eval_data = json.loads(eval_file.read_text())
    # every figure says which models, data hashes and versions made it
    for caption in re.findall(r"<figcaption>(.*?)</figcaption>", page, re.S):
        assert eval_data["dataset"]["hash"][:12] in caption
        assert "harness " in caption and "bm25" in caption
    for title in ("per retriever and suite", "Recall@k curves", "against p95 latency"):
        assert title in page


def test_headline_numbers_agree_in_html_markdown_and_terminal(eval_file: Path, tmp_path: Path) -> None:
    report = build_report([eval_file])
    page = html.render(report)
    markdown = markdown_renderer.render(report)
    terminal = terminal_text(report)
    data = json.loads(eval_file.read_text())
    for suite in data["suites"]:
        for spec in SPECS:
            value = formatting.fmt(suite["aggregates"][spec]["ndcg@10"])
            low, high = suite["intervals"][spec]["ndcg@10"]
            ci = formatting.interval(low, high, 3)
            for output in (page, markdown, terminal):
                assert value in output and ci in output and spec in output
    for retriever in data["retrievers"]:
        p95 = formatting.ms(retriever["latency"]["p95_ms"]).text
        for output in (page, markdown, terminal):
            assert p95 in output
    for line in report.headline():
        assert line in markdown
        assert html.esc(line) in page
        assert " ".join(line.split()) in " ".join(terminal.split())


def test_cli_writes_html_and_markdown(eval_file: Path, tmp_path: Path, capsys) -> None:
    cli_main(["report", str(eval_file.parent), "--html", str(tmp_path / "r.html"), "--markdown", str(tmp_path / "r.md"),
              "--json", str(tmp_path / "r.json")])
    printed = capsys.readouterr().out
    assert "heldout:test" in printed and "wrote" in printed
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
    assert "## Offline evaluation on tiny" in (tmp_path / "r.md").read_text()
    extensions = cpu_vector_extensions()  # what a speed figure depends on, beside the CPU count
    if extensions:
        assert f"CPUs, {' '.join(extensions)})" in (tmp_path / "r.md").read_text()
    assert json.loads((tmp_path / "r.json").read_text())["sections"][0]["kind"] == "eval"


def every_kind_results(root: Path, eval_data: dict) -> list[Path]:
    """A result of every kind the report renders (and one it does not), each figure kind among them."""
    analysis = ab_analysis_result()
    return [
        write_json(root / "matryoshka.json", matryoshka_eval(eval_data)),
        write_json(root / "demo-arms.json", demo_arms_eval(eval_data)),
        write_json(root / "compare.json", compare_result()),
        write_json(root / "demo-arms-compare.json", demo_arms_compare()),
        write_json(root / "analysis.json", analysis),
        write_json(root / "decision.json", ab_decision_result(analysis)),
        model_folder(root),
        root / "ft" / "training_log.json",
        write_json(root / "interleaving.json", {
            "schema_version": 1, "kind": "ab-interleaving", "provenance": provenance(), "experiment_id": "il-1", "a": "bm25", "b": "dense",
            "users": 900, "impressions": 4000, "wins_a": 1200, "wins_b": 1400, "ties": 1400, "preference": 0.0513, "se": 0.02,
            "ci_lower": 0.0121, "ci_upper": 0.0905, "pvalue": 0.01, "sign_test_pvalue": 0.012, "winner": "dense",
            "power": {"power": 0.8, "alpha": 0.05, "users_needed": 700}}),
        write_json(root / "future.json", {"schema_version": 1, "kind": "something-new", "provenance": provenance(), "answer": 42}),
    ]


FIGURE_KINDS = {"metric_intervals", "recall_curves", "pareto", "dimension", "forest", "difference_histograms", "srm",
                "ab_cumulative", "ab_daily", "training_curves"}


def test_every_kind_renders_with_its_figures(eval_file: Path, tmp_path: Path) -> None:
    report = build_report(every_kind_results(tmp_path, json.loads(eval_file.read_text())))
    plotted = {figure.plot for section in report.sections for figure in section.figures}
    assert FIGURE_KINDS <= plotted
    for section in report.sections:
        for figure in section.figures:
            png = plots.render(figure.plot, figure.data)
            assert png.startswith(b"\x89PNG"), figure.plot
            assert figure.caption
    kinds = [s.kind for s in report.sections]
    assert kinds.count("ab-analysis") == 1  # the decision's analysis is the one given, shown once
    unknown = next(s for s in report.sections if s.kind == "something-new")
    assert unknown.badge == "NOT RENDERED" and any("no renderer" in n for n in unknown.notes)
    mteb_tables = [t for t in report.sections[0].tables if t.title.startswith("mteb:local")]
    assert [t.title for t in mteb_tables] == ["mteb:local: 2 queries (split test)", "mteb:local: MTEB tasks"]
    assert any("SciFact skipped" in n for n in report.sections[0].notes)
    assert any("incomplete" in n for n in report.sections[0].notes)
    interleaving = next(s for s in report.sections if s.kind == "ab-interleaving")
    assert interleaving.badge == "WINNER dense" and "+0.0513" in interleaving.headline[0]
    card = next(s for s in report.sections if s.kind == "model-card")
    assert "0.3512 before, 0.4123 after" in card.headline[0]
    assert "7e9125c71389" in card.figures[0].caption
    log_only = next(s for s in report.sections if s.kind == "training-log")
    assert log_only.figures and "not recorded" in log_only.figures[0].caption
    decision = next(s for s in report.sections if s.kind == "ab-decision")
    assert decision.badge == "PROMOTE"
    page = html.render(report)
    assert "could not be drawn" not in page
    assert "something-new" in page and "PROMOTE" in page
    markdown = markdown_renderer.render(report)
    assert "+0.0312" in markdown and "+0.0312" in terminal_text(report) and "+0.0312" in page


def test_real_compare_and_gate_results(eval_file: Path, compare_and_gate_files: tuple[Path, Path], tmp_path: Path) -> None:
    compare_file, gate_file = compare_and_gate_files
    report = build_report([compare_file, gate_file])
    compare, gate = report.sections
    assert compare.kind == "compare" and gate.kind == "gate"
    assert gate.badge in ("PASS", "FAIL", "INCONCLUSIVE")
    assert any(t.title.startswith("Decision table") for t in compare.tables)
    assert {f.plot for f in compare.figures} >= {"forest", "pareto"}
    assert [f.plot for f in gate.figures] == ["forest"]
    # the fingerprint line of each figure comes from the eval the compare and gate read
    assert all("bm25s" in f.caption for f in compare.figures + gate.figures)
    gate_data = json.loads(gate_file.read_text())
    markdown = markdown_renderer.render(report)
    assert gate_data["checks"][0]["reason"] in markdown  # reports.markdown's gate table
    page = html.render(report)
    assert "could not be drawn" not in page
    assert html.esc(gate_data["checks"][0]["reason"]) in page
    assert gate_data["checks"][0]["reason"] in " ".join(terminal_text(report).split()) or gate_data["checks"][0]["name"] in terminal_text(report)


def test_a_malformed_result_gets_a_section_not_a_crash(tmp_path: Path) -> None:
    broken = write_json(tmp_path / "broken.json", {"schema_version": 1, "kind": "eval", "provenance": {}, "suites": "nonsense"})
    report = build_report([broken])
    assert report.sections[0].badge == "NOT RENDERED"
    assert "Could not render" in report.sections[0].notes[0]
    html.render(report)


def test_a_file_that_is_not_a_result_is_an_error(tmp_path: Path) -> None:
    bad = write_json(tmp_path / "x.json", {"hello": 1})
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["report", str(bad), "--quiet"])
    assert exit_info.value.code == 3


def test_every_figure_keeps_its_legends_and_labels_inside(eval_file: Path, tmp_path: Path) -> None:
    """Legends, axis and tick labels and annotations lie inside their figure, with the demo's long
    arm names too (a centred legend wider than its figure lost its first entries over the left edge)."""
    report = build_report(every_kind_results(tmp_path, json.loads(eval_file.read_text())))
    figures = [figure for section in report.sections for figure in section.figures]
    assert FIGURE_KINDS <= {figure.plot for figure in figures}
    crossed = {f"{figure.title} ({figure.plot})": outside_the_figure(plots.draw(figure.plot, figure.data)) for figure in figures}
    assert {title: sides for title, sides in crossed.items() if sides} == {}
    demo = next(s for s in report.sections if s.source.endswith("demo-arms.json"))
    legend = plots.draw("metric_intervals", demo.figures[0].data).legends[0]
    assert [text.get_text() for text in legend.get_texts()] == DEMO_ARMS  # every arm, none shortened


def test_dataset_counts_show_in_the_eval_section_when_present(eval_file: Path, tmp_path: Path) -> None:
    data = json.loads(eval_file.read_text())
    plain = build_report([eval_file])
    assert not any(t.title.startswith("Dataset ") for t in plain.sections[0].tables)
    data["dataset"] |= {"unretrievable_judgements": {"test": 3, "dev": 0}, "duplicate_texts": 7, "empty_documents": 2}
    report = build_report([write_json(tmp_path / "result.json", data)])
    table = report.sections[0].tables[0]
    assert table.title == "Dataset tiny: counted, nothing dropped"
    assert [[c.text for c in row] for row in table.rows] == [
        ["judgements of documents not in the corpus, split test", "3"], ["judgements of documents not in the corpus, split dev", "0"],
        ["documents whose text repeats another document's", "7"], ["documents with neither title nor text", "2"]]
    assert [(t.title, t.rows) for t in report.sections[0].tables[1:]] == [(t.title, t.rows) for t in plain.sections[0].tables]
    assert "| judgements of documents not in the corpus, split test | 3 |" in markdown_renderer.render(report)
    assert "split test" in html.render(report) and "split test" in terminal_text(report)


def test_commands_write_their_forms_from_the_document(eval_file: Path, compare_and_gate_files: tuple[Path, Path]) -> None:
    """gate.md, junit.xml and compare.md are the sections' short forms: the files the commands wrote are
    those forms, and the report's Markdown shows the same comment under the section's own heading."""
    import xml.etree.ElementTree as ET

    from harness.reports import junit
    from harness.reports.sections import command_section

    compare_file, gate_file = compare_and_gate_files
    gate = command_section(str(gate_file), json.loads(gate_file.read_text()))
    assert markdown_renderer.comment(gate) == (gate_file.parent / "gate.md").read_text()
    assert junit.render(gate) == (gate_file.parent / "junit.xml").read_text()
    cases = ET.fromstring(junit.render(gate)).findall("testcase")
    assert [case.get("name") for case in cases] == [check["name"] for check in json.loads(gate_file.read_text())["checks"]]
    compare = command_section(str(compare_file), json.loads(compare_file.read_text()))
    assert markdown_renderer.comment(compare) == (compare_file.parent / "compare.md").read_text()
    report = markdown_renderer.render(build_report([compare_file, gate_file]))
    for section in (compare, gate):
        body = markdown_renderer.comment(section).split("\n", 2)[2].strip()  # below the comment's own heading
        assert body in report
    printed = io.StringIO()
    terminal.print_console(command_section(str(eval_file), json.loads(eval_file.read_text())), Console(file=printed, width=160))
    assert "heldout:test: 5 queries" in printed.getvalue() and "dataset tiny" in printed.getvalue()


def test_the_report_command_refuses_a_result_the_gate_would_refuse(eval_file: Path, tmp_path: Path, capsys) -> None:
    data = json.loads(eval_file.read_text())
    suite = data["suites"][0]
    query = suite["query_ids"][0]
    suite["per_query"][SPECS[1]]["ndcg@10"][query] = float("nan")
    broken = tmp_path / "result.json"
    broken.write_text(json.dumps(data, indent=1))  # json writes the NaN literal
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        cli_main(["report", str(broken), "--html", str(tmp_path / "r.html"), "--quiet"])
    assert exited.value.code == 3
    error = capsys.readouterr().err.strip()
    line = next(n for n, text in enumerate(broken.read_text().splitlines(), 1) if f'"{query}": NaN' in text)
    assert error == f"error: {broken}:{line}: suite {suite['name']}, retriever {SPECS[1]}, ndcg@10, query {query}: NaN is not a finite number"
    assert not (tmp_path / "r.html").exists()


def test_the_loop_result_is_drawn_as_rounds_lineage_and_history(tmp_path: Path) -> None:
    """loop.json (the demo's loop stage) becomes one section: each round's lift over its
    champion with its interval and verdicts, the versions with their parents, the history."""
    import json

    from harness.reports.sections import build_report

    offline = {"baseline_mean": 0.7376, "candidate_mean": 0.799, "difference": 0.0614, "ci_low": 0.0402, "ci_high": 0.0831,
               "p_adjusted": 0.0006}
    loop = {
        "kind": "loop", "schema_version": 1, "champion_at_end": 1, "rolled_back": True, "registry": "sqlite:///x.db",
        "rounds": [{"round": 2, "trained_on": "logged pairs", "baseline": "dense:r1", "candidate": "dense:r2", "offline": offline,
                    "gate": "pass", "ab": "hold", "promoted": False}],
        "versions": [{"version": 1, "path": "base", "fingerprint": "63e50d13b9a6e572", "parent": None, "aliases": ["champion"]},
                     {"version": 2, "path": "r1", "fingerprint": "6de33bf351cad700", "parent": 1, "aliases": []}],
        "history": [{"at": "t", "event": "rollback", "version": 1, "previous_champion": 2, "by": "me", "via": "rollback", "reason": "drill"}],
        "pairs": {"file": "p.jsonl", "rows": {"train": 3, "train_queries": 2}, "leakage": {"excluded_queries": 1, "excluded_exposures": 4},
                  "debias": "ipw"},
        "serving": {"db": "loop/index", "aliases": {"search": "search-63e50d13-a", "search@previous": "search-6de33bf3-b"},
                    "indexes": [{"collection": "search-63e50d13-a", "model": "dense", "fingerprint": "63e50d13b9a6e572",
                                 "registry": {"version": 1}, "documents": 2002},
                                {"collection": "search-6de33bf3-b", "model": "dense:r1", "fingerprint": "6de33bf351cad700",
                                 "registry": {"version": 2}, "documents": 2002}],
                    "served_arm": "qdrant:r1(db=loop/index,alias=search)", "in_memory_arm": "dense:r1", "suite": "heldout:test",
                    "ndcg@10": {"served": 0.7376, "in_memory": 0.7376}},
        "provenance": {"harness_version": "0.1.0", "created_at": "t"},
    }
    path = tmp_path / "loop.json"
    path.write_text(json.dumps(loop))
    (section,) = build_report([path]).sections
    assert section.kind == "loop" and section.badge == "champion v1"
    assert section.headline[0].startswith("round 2 (logged pairs): nDCG@10 0.7990 vs 0.7376 (+0.0614 [+0.0402, +0.0831])")
    assert section.headline[1] == "rollback drill: champion restored to v1"
    rounds, versions, history, serving = section.tables
    assert [c.text for c in rounds.rows[0]][-3:] == ["pass", "hold", "no"]
    assert [c.text for c in versions.rows[1]][:2] == ["2", "1"] and history.rows[0][1].text == "rollback"
    assert [c.text for c in serving.rows[0]][-1] == "search" and [c.text for c in serving.rows[1]][-1] == "search@previous"
    assert "nDCG@10 0.7376, the in-memory dense:r1 0.7376" in section.notes[0]
    assert "left out 1 queries" in section.notes[1]
