"""Figures of the report, drawn with matplotlib (Agg, no display) from a figure's data.

Each plot function takes the ``data`` of a :class:`harness.reports.document.Figure` (numbers read
from a result) and draws on a matplotlib ``Figure``; :func:`render` returns PNG bytes to be
inlined in the HTML. Nothing here computes a statistic: intervals, fronts and effects come
in the data.
"""

from __future__ import annotations

import io
import math
from typing import Any, Callable

PALETTE = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C", "#CCB974", "#64B5CD")
GOOD, BAD, NEUTRAL, BAND, SEQ = "#2E7D32", "#C62828", "#555555", "#9ecae1", "#3182bd"
DPI = 110
LEGEND_SHARE = 0.96  # of the figure's width a legend may take, leaving a margin at each side
LEGEND_LABEL = 64  # characters of an arm's spec a legend shows (a demo's rerank arm with its model path is 51)


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)  # a renderer to measure legends with (_legend_below)
    return fig


def _legend_below(fig, handles: list, labels: list[str], most_columns: int = 5, fontsize: float = 8.5):
    """A legend under the axes, in as many columns as fit the figure's width. Centred and
    wider than its figure, a legend loses its first and last entries over the edges: the
    layout keeps room for its height only."""
    columns = max(1, min(len(labels), most_columns))
    renderer = fig.canvas.get_renderer()
    while True:
        legend = fig.legend(handles, labels, loc="outside lower center", ncol=columns, fontsize=fontsize, frameon=False)
        if columns == 1 or legend.get_window_extent(renderer).width <= fig.bbox.width * LEGEND_SHARE:
            return legend
        legend.remove()
        columns -= 1


def _style(ax) -> None:
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)
    ax.grid(True, color="#e6e6e6", linewidth=0.8)
    ax.set_axisbelow(True)
    ax.tick_params(labelsize=9)


def _label(text: str, limit: int = 38) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _metric(metric: str) -> str:
    from harness.reports.formatting import metric_label

    return metric_label(metric)


def colors_for(names: list[str]) -> dict[str, str]:
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def _finite(*values: Any) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


# ------------------------------------------------------------------------------ eval


def metric_intervals(data: dict[str, Any]):
    metrics = data["metrics"]
    suites = data["suites"]
    retrievers = data["retrievers"]
    colors = colors_for(retrievers)
    rows = len(suites) * len(retrievers)
    fig = _figure(10, 1.0 + 0.24 * rows + 0.3 * len(suites))
    axes = fig.subplots(1, len(metrics), sharey=True, squeeze=False)[0]
    step = 1.0 / (len(retrievers) + 1)
    for ax, metric in zip(axes, metrics):
        values = data["values"][metric]
        for s_index, suite in enumerate(suites):
            for r_index, spec in enumerate(retrievers):
                point = (values.get(suite) or {}).get(spec)
                if not point:
                    continue
                mean, low, high = (point + [None, None])[:3]
                y = s_index + (r_index + 1) * step - 0.5
                if _finite(low, high):
                    ax.errorbar(mean, y, xerr=[[mean - low], [high - mean]], fmt="o", color=colors[spec], ms=5, capsize=3, lw=1.5,
                                label=_label(spec, LEGEND_LABEL) if s_index == 0 else None)
                else:
                    ax.plot(mean, y, "o", color=colors[spec], ms=5, label=_label(spec, LEGEND_LABEL) if s_index == 0 else None)
                ax.annotate(f"{mean:.3f}", (high if _finite(high) else mean, y), xytext=(4, 0), textcoords="offset points",
                            va="center", fontsize=7.5, color="#444")
        for boundary in range(1, len(suites)):
            ax.axhline(boundary - 0.5, color="#bbbbbb", lw=0.8)
        ax.set_yticks(range(len(suites)), [_label(s, 30) for s in suites])
        ax.set_ylim(len(suites) - 0.5, -0.5)
        ax.set_xlabel(f"{_metric(metric)} (mean, 95% bootstrap interval)", fontsize=9)
        ax.set_title(_metric(metric), fontsize=10)
        _style(ax)
        ax.grid(False, axis="y")
        left, right = ax.get_xlim()
        ax.set_xlim(left, right + (right - left) * 0.08)
    handles, labels = axes[0].get_legend_handles_labels()
    _legend_below(fig, handles, labels)
    return fig


def recall_curves(data: dict[str, Any]):
    suites = data["suites"]
    names = list(suites)[:4]
    specs: list[str] = []
    for curves in suites.values():
        for spec in curves:
            if spec not in specs:
                specs.append(spec)
    colors = colors_for(specs)
    fig = _figure(min(10, 3.4 * len(names) + 0.5), 3.4)
    axes = fig.subplots(1, len(names), sharey=True, squeeze=False)[0]
    for ax, suite in zip(axes, names):
        for spec, curve in suites[suite].items():
            ks = sorted(curve, key=lambda k: int(k))
            ax.plot([int(k) for k in ks], [curve[k] for k in ks], marker="o", ms=3, lw=1.6, color=colors[spec], label=_label(spec, LEGEND_LABEL))
        ax.set_xscale("log")
        ks = sorted({int(k) for curve in suites[suite].values() for k in curve})
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.minorticks_off()
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("k (cut-off)", fontsize=9)
        ax.set_title(_label(suite, 34), fontsize=10)
        _style(ax)
    axes[0].set_ylabel("mean Recall@k", fontsize=9)
    handles, labels = axes[0].get_legend_handles_labels()
    _legend_below(fig, handles, labels)
    return fig


def pareto(data: dict[str, Any]):
    points = data["points"]
    front = set(data.get("front") or [])
    intervals = data.get("intervals") or {}
    colors = colors_for(list(points))
    fig = _figure(7.5, 3.8)
    ax = fig.subplots()
    latencies = [p[1] for p in points.values() if _finite(p[1])]
    for spec, (quality, latency) in points.items():
        ci = intervals.get(spec)
        on_front = spec in front
        if ci and _finite(*ci):
            ax.errorbar(latency, quality, yerr=[[quality - ci[0]], [ci[1] - quality]], fmt="none", ecolor=colors[spec], alpha=0.6, capsize=3)
        ax.scatter([latency], [quality], s=70 if on_front else 45, color=colors[spec], edgecolor="black" if on_front else "white",
                   linewidth=1.4 if on_front else 0.8, zorder=3, marker="D" if on_front else "o")
    ordered = sorted((points[s][1], points[s][0]) for s in front if s in points)
    if len(ordered) > 1:
        xs, ys = zip(*ordered)
        ax.step(xs, ys, where="post", color="black", lw=1, ls="--", label="Pareto front", zorder=2)
    elif ordered:
        ax.plot([], [], color="black", ls="--", lw=1, label="Pareto front")
    if latencies and min(latencies) > 0 and max(latencies) / min(latencies) > 20:
        from matplotlib.ticker import FuncFormatter

        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.set_xlabel("p95 latency per query (ms, lower is better)", fontsize=9)
    ax.set_ylabel(f"{_metric(data['metric'])} (higher is better)", fontsize=9)
    left, right = ax.get_xlim()
    ax.set_xlim(left, right * 1.25 if ax.get_xscale() == "log" else right + (right - left) * 0.2)
    to_axes = ax.transScale + ax.transLimits
    for spec, (quality, latency) in points.items():
        # an arm in the right part of the plot is named on its left, so its name stays inside the figure
        on_left = to_axes.transform((latency, quality))[0] > 0.6
        ax.annotate(_label(spec, 30), (latency, quality), xytext=(-6 if on_left else 6, 5), textcoords="offset points",
                    ha="right" if on_left else "left", fontsize=8.5)
    handles, labels = ax.get_legend_handles_labels()
    _legend_below(fig, handles, [labels[0] + " (diamonds: arms on the front)"] if labels else [])
    _style(ax)
    return fig


def dimension(data: dict[str, Any]):
    series = data["series"]
    fig = _figure(7.5, 4.0)
    ax = fig.subplots()
    suites = sorted({suite for by_suite in series.values() for suite in by_suite})
    colors = colors_for(suites)
    markers = "osD^v"
    all_dims: set[int] = set()
    for m_index, (model, by_suite) in enumerate(series.items()):
        for suite, points in by_suite.items():
            dims = [p[0] for p in points]
            all_dims.update(dims)
            means = [p[1] for p in points]
            lows = [p[1] - p[2] if _finite(p[2]) else 0 for p in points]
            highs = [p[3] - p[1] if _finite(p[3]) else 0 for p in points]
            ax.errorbar(dims, means, yerr=[lows, highs], marker=markers[m_index % len(markers)], ms=5, capsize=3, lw=1.6,
                        color=colors[suite], label=_label(f"{suite}" + (f" ({model})" if len(series) > 1 else ""), 48))
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(all_dims), [str(d) for d in sorted(all_dims)])
    ax.minorticks_off()
    ax.set_xlabel("embedding dimensions kept" + (f" ({next(iter(series))})" if len(series) == 1 else ""), fontsize=9)
    ax.set_ylabel(f"{_metric(data['metric'])} (mean, 95% interval)", fontsize=9)
    _legend_below(fig, *ax.get_legend_handles_labels(), most_columns=3)  # inside the axes it would cover a line
    _style(ax)
    return fig


# ------------------------------------------------------------------------------ compare


def forest(data: dict[str, Any]):
    rows = data["rows"]
    fig = _figure(9, 1.2 + 0.4 * len(rows))
    ax = fig.subplots()
    labels = []
    drew_threshold = False
    for i, row in enumerate(rows):
        diff, low, high = row.get("difference"), row.get("ci_low"), row.get("ci_high")
        color = NEUTRAL if not row.get("significant") else (GOOD if (diff or 0) > 0 else BAD)
        if _finite(diff, low, high):
            ax.errorbar(diff, i, xerr=[[diff - low], [high - diff]], fmt="o", color=color, capsize=3, ms=5)
            ax.annotate(f"{diff:+.4f}", (high, i), xytext=(5, 0), textcoords="offset points", va="center", fontsize=8, color="#444")
        elif _finite(diff):
            ax.plot(diff, i, "o", color=color)
        threshold = row.get("threshold")
        if _finite(threshold):
            ax.plot([threshold, threshold], [i - 0.35, i + 0.35], color="#b15928", lw=2, label=None if drew_threshold else "threshold of the check")
            drew_threshold = True
        label = row.get("label") or f"{row.get('candidate')} vs {row.get('baseline')} · {row.get('suite')} · {row.get('metric')}"
        labels.append(_label(label, 60))
    ax.axvline(0, color="black", lw=0.9)
    ax.set_yticks(range(len(rows)), labels, fontsize=8.5)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlabel("mean paired difference, candidate - baseline, with its interval", fontsize=9)
    # over the whole figure: above the axes alone, narrowed by long row labels, it would run off the right edge
    fig.suptitle("green / red: significantly better / worse after the multiplicity correction; grey: not significant", fontsize=8.5, color="#555")
    left, right = ax.get_xlim()
    ax.set_xlim(left, right + (right - left) * 0.12)
    if drew_threshold:
        ax.legend(fontsize=8, frameon=False, loc="best")
    _style(ax)
    return fig


def difference_histograms(data: dict[str, Any]):
    series = data["series"][:6]
    cols = min(3, len(series))
    rows = math.ceil(len(series) / cols)
    fig = _figure(3.4 * cols + 0.4, 2.8 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, item in zip(axes, series):
        values = [v for v in item["values"] if _finite(v)]
        ax.hist(values, bins=min(40, max(10, int(len(values) ** 0.5) * 2)), color=PALETTE[0], alpha=0.85)
        ax.axvline(0, color="black", lw=0.9)
        if _finite(item.get("difference")):
            ax.axvline(item["difference"], color=BAD if item["difference"] < 0 else GOOD, lw=1.4, ls="--", label=f"mean {item['difference']:+.4f}")
            ax.legend(fontsize=7.5, frameon=False)
        ax.set_title(_label(item["label"], 46), fontsize=8.5)
        ax.set_xlabel("per-query difference", fontsize=8.5)
        _style(ax)
    for ax in axes[len(series):]:
        ax.set_visible(False)
    axes[0].set_ylabel("queries", fontsize=8.5)
    return fig


# ------------------------------------------------------------------------------ A/B


def srm(data: dict[str, Any]):
    users = data["users"]
    shares = data.get("expected_share") or {}
    total = sum(users.values()) or 1
    names = list(users)
    fig = _figure(6.5, 2.2 + 0.35 * len(names))
    ax = fig.subplots()
    observed = [users[n] / total for n in names]
    expected = [shares.get(n) for n in names]
    color = BAD if data.get("mismatch") else PALETTE[0]
    ax.barh(range(len(names)), observed, color=color, height=0.55, label="observed share of users")
    for i, (share, n) in enumerate(zip(observed, names)):
        ax.annotate(f"{share:.2%} ({users[n]:,} users)", (share, i), xytext=(4, 0), textcoords="offset points", va="center", fontsize=8.5)
    for i, share in enumerate(expected):
        if _finite(share):
            ax.plot([share, share], [i - 0.38, i + 0.38], color="black", lw=2, label="planned share" if i == 0 else None)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlim(0, max(observed + [s for s in expected if _finite(s)]) * 1.45)
    ax.xaxis.set_major_formatter(__import__("matplotlib.ticker", fromlist=["PercentFormatter"]).PercentFormatter(1.0))
    p = data.get("pvalue")
    verdict = "MISMATCH" if data.get("mismatch") else "no mismatch"
    ax.set_title(f"chi-square p = {p:.3g}: {verdict} (threshold {data.get('threshold', 0.001)})" if _finite(p) else verdict, fontsize=9.5)
    handles, labels = ax.get_legend_handles_labels()
    _legend_below(fig, handles, labels, most_columns=2, fontsize=8)
    _style(ax)
    ax.grid(False, axis="y")
    return fig


def _rows_by(rows: list[dict[str, Any]], metric: str) -> dict[str, list[dict[str, Any]]]:
    by_treatment: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("metric") == metric:
            by_treatment.setdefault(str(row.get("treatment")), []).append(row)
    for values in by_treatment.values():
        values.sort(key=lambda r: r.get("day", 0))
    return by_treatment


def ab_cumulative(data: dict[str, Any]):
    metrics = data["metrics"]
    cols = min(2, len(metrics))
    nrows = math.ceil(len(metrics) / cols)
    fig = _figure(10 if cols > 1 else 7.5, 3.2 * nrows + 0.3)
    axes = fig.subplots(nrows, cols, squeeze=False).ravel()
    for ax, metric in zip(axes, metrics):
        by_treatment = _rows_by(data["rows"], metric)
        for t_index, (treatment, rows) in enumerate(by_treatment.items()):
            days = [r.get("day", i) + 1 for i, r in enumerate(rows)]
            effect = [r.get("effect_size") for r in rows]
            color = PALETTE[t_index % len(PALETTE)]
            seq = [(d, r.get("seq_ci_lower"), r.get("seq_ci_upper")) for d, r in zip(days, rows) if _finite(r.get("seq_ci_lower"), r.get("seq_ci_upper"))]
            fixed = [(d, r.get("ci_lower"), r.get("ci_upper")) for d, r in zip(days, rows) if _finite(r.get("ci_lower"), r.get("ci_upper"))]
            if seq:
                x, lo, hi = zip(*seq)
                ax.fill_between(x, lo, hi, color=color, alpha=0.15, lw=0, label="always-valid interval" if t_index == 0 else None)
                ax.plot(x, lo, color=color, lw=0.8, alpha=0.7)
                ax.plot(x, hi, color=color, lw=0.8, alpha=0.7)
            if fixed:
                x, lo, hi = zip(*fixed)
                ax.plot(x, lo, color=color, lw=0.9, ls=":", label="fixed-horizon 95% interval" if t_index == 0 else None)
                ax.plot(x, hi, color=color, lw=0.9, ls=":")
            ax.plot(days, effect, color=color, lw=2, marker="o", ms=3.5, label=f"{treatment} - control")
        ax.axhline(0, color="black", lw=0.9)
        role = "primary" if metric == data.get("primary") else "guardrail"
        ax.set_title(f"{metric} ({role})", fontsize=10)
        ax.set_xlabel("day of the experiment (cumulative)", fontsize=9)
        ax.set_ylabel("effect", fontsize=9)
        ax.xaxis.set_major_locator(__import__("matplotlib.ticker", fromlist=["MaxNLocator"]).MaxNLocator(integer=True))
        _style(ax)
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    _legend_below(fig, handles, labels, most_columns=len(labels))
    return fig


def ab_daily(data: dict[str, Any]):
    metrics = data["metrics"]
    fig = _figure(10 if len(metrics) > 1 else 7.5, 3.3)
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics):
        by_treatment = _rows_by(data["rows"], metric)
        width = 0.8 / max(1, len(by_treatment))
        for t_index, (treatment, rows) in enumerate(by_treatment.items()):
            color = PALETTE[t_index % len(PALETTE)]
            for r in rows:
                day = r.get("day", 0) + 1 + (t_index - (len(by_treatment) - 1) / 2) * width
                effect, low, high = r.get("effect_size"), r.get("effect_size_ci_lower"), r.get("effect_size_ci_upper")
                if _finite(effect, low, high):
                    ax.errorbar(day, effect, yerr=[[effect - low], [high - effect]], fmt="o", color=color, ms=4, capsize=2, lw=1.2)
                elif _finite(effect):
                    ax.plot(day, effect, "o", color=color, ms=4)
            ax.plot([], [], "o", color=color, label=f"{treatment} - control")
        ax.axhline(0, color="black", lw=0.9)
        role = "primary" if metric == data.get("primary") else "guardrail"
        ax.set_title(f"{metric} ({role}): effect among each day's users", fontsize=10)
        ax.set_xlabel("day of the experiment", fontsize=9)
        ax.xaxis.set_major_locator(__import__("matplotlib.ticker", fromlist=["MaxNLocator"]).MaxNLocator(integer=True))
        _style(ax)
        ax.legend(fontsize=8, frameon=False)
    axes[0].set_ylabel("effect (95% interval)", fontsize=9)
    return fig


# ------------------------------------------------------------------------------ training


def training_curves(data: dict[str, Any]):
    passes = {k: v for k, v in data["passes"].items() if v.get("loss") or v.get("validation")}
    names = list(passes)[:3]
    fig = _figure(min(10, 3.6 * len(names) + 0.6), 5.2)
    axes = fig.subplots(2, len(names), squeeze=False, sharex="col")
    for column, name in enumerate(names):
        curve = passes[name]
        top, bottom = axes[0][column], axes[1][column]
        loss = sorted(p for p in curve.get("loss") or [] if _finite(*p))
        if loss:
            xs, ys = zip(*loss)
            top.plot(xs, ys, marker="o" if len(xs) < 30 else None, ms=3, lw=1.6, color=PALETTE[0])
        top.set_title(f"{name}: training loss", fontsize=9.5)
        for i, (metric, points) in enumerate(sorted((curve.get("validation") or {}).items())):
            points = sorted(p for p in points if _finite(*p))
            if points:
                xs, ys = zip(*points)
                bottom.plot(xs, ys, marker="o", ms=4, lw=1.6, color=PALETTE[(i + 1) % len(PALETTE)], label=metric)
        bottom.set_title(f"{name}: validation", fontsize=9.5)
        bottom.set_xlabel("training step", fontsize=9)
        if (curve.get("validation") or {}):
            bottom.legend(fontsize=8, frameon=False)
        for ax in (top, bottom):
            _style(ax)
            ax.xaxis.set_major_locator(__import__("matplotlib.ticker", fromlist=["MaxNLocator"]).MaxNLocator(integer=True))
    axes[0][0].set_ylabel("loss", fontsize=9)
    axes[1][0].set_ylabel("validation metric", fontsize=9)
    return fig


PLOTS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "metric_intervals": metric_intervals,
    "recall_curves": recall_curves,
    "pareto": pareto,
    "dimension": dimension,
    "forest": forest,
    "difference_histograms": difference_histograms,
    "srm": srm,
    "ab_cumulative": ab_cumulative,
    "ab_daily": ab_daily,
    "training_curves": training_curves,
}


def draw(plot: str, data: dict[str, Any]):
    """The matplotlib figure of a plot."""
    return PLOTS[plot](data)


def render(plot: str, data: dict[str, Any]) -> bytes:
    """PNG bytes of a plot (deterministic: no timestamps in the metadata)."""
    fig = draw(plot, data)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None}, facecolor="white")
    return buffer.getvalue()
