"""The report as one self-contained HTML file: inline CSS, inline JavaScript (sortable
tables, an error trap), figures as inline base64 PNG drawn by matplotlib. No network, no CDN.

The page records its own health for the browser test: a script in ``<head>`` traps script
errors, ``console.error`` calls and resources that fail to load into ``#report-errors``, and
once the page has loaded ``<body data-report-status>`` is ``ok`` or ``errors``.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
from pathlib import Path

from harness.reports.document import Cell, Figure, Report, Section, Table

CSS = """
:root { --fg:#1f2328; --muted:#59636e; --line:#d1d9e0; --bg:#ffffff; --soft:#f6f8fa; --accent:#0b5cad;
        --good:#1a7f37; --bad:#cf222e; --warn:#9a6700; }
* { box-sizing: border-box; }
body { margin:0; font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "DejaVu Sans", "Liberation Sans", Arial, sans-serif;
       color:var(--fg); background:var(--bg); }
header.top { background:#0d2538; color:#fff; padding:22px 32px 18px; }
header.top h1 { margin:0 0 4px; font-size:24px; font-weight:600; }
header.top p { margin:0; color:#c9d6e2; font-size:13px; }
main { max-width:1320px; margin:0 auto; padding:8px 32px 48px; }
nav.toc { margin:18px 0 8px; padding:10px 14px; background:var(--soft); border:1px solid var(--line); border-radius:6px; font-size:14px; }
nav.toc ol { margin:4px 0 0; padding-left:22px; }
nav.toc a { color:var(--accent); text-decoration:none; }
section.result { border-top:3px solid #0d2538; margin-top:34px; padding-top:6px; }
section.result h2 { font-size:21px; margin:10px 0 2px; display:flex; align-items:center; gap:12px; flex-wrap:wrap; }
h3 { font-size:16px; margin:22px 0 6px; }
p.intro { margin:4px 0 8px; font-size:14px; }
.src { color:var(--muted); font-size:12.5px; margin:0 0 10px; word-break:break-all; }
.badge { font-size:12.5px; font-weight:700; letter-spacing:.04em; padding:3px 10px; border-radius:12px; background:#eaeef2; color:var(--fg); }
.badge.good { background:#dafbe1; color:var(--good); } .badge.bad { background:#ffebe9; color:var(--bad); }
.badge.warn { background:#fff8c5; color:var(--warn); }
ul.headline { margin:8px 0 14px; padding:12px 16px 12px 30px; background:#f0f6fc; border-left:4px solid var(--accent); border-radius:4px; }
ul.headline li { margin:3px 0; }
figure { margin:18px 0 26px; padding:12px; border:1px solid var(--line); border-radius:6px; background:#fff; }
figure h3 { margin:0 0 8px; }
figure img { display:block; max-width:100%; height:auto; margin:0 auto; }
figcaption { color:var(--muted); font-size:12.5px; margin-top:8px; line-height:1.45; }
figcaption b { color:var(--fg); }
.table-wrap { overflow-x:auto; margin:6px 0 4px; }
table { border-collapse:collapse; font-size:13px; width:auto; min-width:50%; }
caption { text-align:left; font-weight:600; font-size:15px; padding:4px 0 6px; }
th, td { padding:4px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
th { background:var(--soft); text-align:left; position:sticky; top:0; }
th.sortable { cursor:pointer; user-select:none; }
th.sortable::after { content:" \\2195"; color:#9aa4ae; font-size:11px; }
th[aria-sort="ascending"]::after { content:" \\25B2"; color:var(--accent); }
th[aria-sort="descending"]::after { content:" \\25BC"; color:var(--accent); }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
td .ci { display:block; color:var(--muted); font-size:11.5px; white-space:nowrap; }
td.best { font-weight:700; }
td.good { color:var(--good); font-weight:600; } td.bad { color:var(--bad); font-weight:600; } td.warn { color:var(--warn); }
td.muted { color:#9aa4ae; }
tbody tr:hover { background:#f6f8fa; }
p.table-note { color:var(--muted); font-size:12.5px; margin:2px 0 18px; }
ul.notes { color:var(--muted); font-size:13px; padding-left:20px; }
details.prov { font-size:12.5px; color:var(--muted); margin:10px 0; }
details.prov summary { cursor:pointer; }
#report-errors { background:#ffebe9; color:var(--bad); padding:10px; border:1px solid var(--bad); white-space:pre-wrap; }
footer { color:var(--muted); font-size:12px; border-top:1px solid var(--line); margin-top:40px; padding-top:10px; }
"""

# First in <head>: trap every error before anything else runs.
TRAP_JS = """
(function () {
  var errors = [];
  function record(message) {
    errors.push(String(message));
    var box = document.getElementById('report-errors');
    if (box) { box.textContent = errors.join('\\n'); box.hidden = false; }
    if (document.body) { document.body.setAttribute('data-report-status', 'errors'); }
  }
  window.__reportErrors = errors;
  window.addEventListener('error', function (event) {
    var target = event.target;
    if (target && target !== window && (target.src || target.href)) {
      record('resource failed to load: ' + (target.src || target.href).slice(0, 120));
    } else {
      record('error: ' + (event.message || 'unknown') + (event.filename ? ' at ' + event.filename + ':' + event.lineno : ''));
    }
  }, true);
  window.addEventListener('unhandledrejection', function (event) { record('unhandled rejection: ' + event.reason); });
  var original = console.error;
  console.error = function () {
    record('console.error: ' + Array.prototype.slice.call(arguments).join(' '));
    return original.apply(console, arguments);
  };
  window.addEventListener('load', function () {
    var images = document.images;
    for (var i = 0; i < images.length; i++) {
      if (!images[i].complete || images[i].naturalWidth === 0) { record('image did not render: ' + (images[i].alt || i)); }
    }
    document.body.setAttribute('data-images', String(images.length));
    if (!errors.length) { document.body.setAttribute('data-report-status', 'ok'); }
    else { record(errors.length + ' error(s)'); }
  });
})();
"""

SORT_JS = """
(function () {
  function key(cell, numeric) {
    var raw = cell.getAttribute('data-v');
    if (numeric) {
      var value = raw === null || raw === '' ? NaN : parseFloat(raw);
      return isNaN(value) ? null : value;
    }
    return (raw === null ? cell.textContent : raw).trim().toLowerCase();
  }
  function sortBy(table, index, numeric, header) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var descending = header.getAttribute('aria-sort') !== 'descending' && (numeric || header.getAttribute('aria-sort') === 'ascending');
    rows.sort(function (a, b) {
      var x = key(a.cells[index], numeric), y = key(b.cells[index], numeric);
      if (x === null && y === null) { return 0; }
      if (x === null) { return 1; }
      if (y === null) { return -1; }
      var order = x < y ? -1 : x > y ? 1 : 0;
      return descending ? -order : order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) { th.removeAttribute('aria-sort'); });
    header.setAttribute('aria-sort', descending ? 'descending' : 'ascending');
  }
  document.addEventListener('DOMContentLoaded', function () {
    var tables = document.querySelectorAll('table.sortable');
    Array.prototype.forEach.call(tables, function (table) {
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
        th.classList.add('sortable');
        th.title = 'sort by ' + th.textContent;
        th.addEventListener('click', function () { sortBy(table, index, th.classList.contains('num'), th); });
      });
    });
    document.body.setAttribute('data-sortable-tables', String(tables.length));
    if (location.hash === '#selftest-sort') { selftest(tables); }
  });
  // Opened as report.html#selftest-sort (by the browser test): sort every table on its
  // first numeric column and check the order, so a headless dump shows whether sorting works.
  function selftest(tables) {
    var checked = 0, failed = 0;
    Array.prototype.forEach.call(tables, function (table) {
      var headers = table.tHead.rows[0].cells, index = -1;
      for (var i = 0; i < headers.length; i++) { if (headers[i].classList.contains('num')) { index = i; break; } }
      if (index < 0 || table.tBodies[0].rows.length < 2) { return; }
      headers[index].click();
      var values = Array.prototype.map.call(table.tBodies[0].rows, function (row) { return key(row.cells[index], true); })
        .filter(function (v) { return v !== null; });
      for (var j = 1; j < values.length; j++) { if (values[j - 1] < values[j]) { failed++; break; } }
      checked++;
    });
    document.body.setAttribute('data-sort-selftest', failed ? 'failed' : 'ok:' + checked);
  }
})();
"""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def render_table(table: Table) -> str:
    head = "".join(
        f'<th scope="col" class="{"num" if numeric else "text"}">{esc(name)}</th>' for name, numeric in zip(table.columns, table.numeric)
    )
    body = []
    for row in table.rows:
        cells = []
        for cell, numeric in zip(row, table.numeric):
            classes = " ".join(c for c in ("num" if numeric else "", cell.tone) if c)
            value = "" if cell.value is None else esc(cell.value if not isinstance(cell.value, float) else repr(cell.value))
            detail = f'<span class="ci">{esc(cell.detail)}</span>' if cell.detail else ""
            cells.append(f'<td class="{classes}" data-v="{value}">{esc(cell.text)}{detail}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    note = f'<p class="table-note">{esc(table.note)}</p>' if table.note else ""
    return (
        f'<div class="table-wrap"><table class="sortable" id="{esc(table.key)}"><caption>{esc(table.title)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>{note}"
    )


def render_figure(figure: Figure, number: int) -> str:
    from harness.reports import plots

    try:
        png = plots.render(figure.plot, figure.data)
    except Exception as exc:  # a figure that cannot be drawn is reported, not fatal
        return (
            f'<figure id="{esc(figure.key)}"><h3>Figure {number}. {esc(figure.title)}</h3>'
            f'<p class="table-note">This figure could not be drawn ({esc(type(exc).__name__)}: {esc(exc)}).</p></figure>'
        )
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure id="{esc(figure.key)}"><h3>Figure {number}. {esc(figure.title)}</h3>'
        f'<img src="data:image/png;base64,{data}" alt="{esc(figure.alt or figure.title)}">'
        f"<figcaption><b>Made by:</b> {esc(figure.caption)}</figcaption></figure>"
    )


def render_section(section: Section, counter: list[int]) -> str:
    parts = [f'<section class="result" id="{esc(section.key)}">']
    badge = f'<span class="badge {esc(section.badge_tone)}">{esc(section.badge)}</span>' if section.badge else ""
    parts.append(f"<h2>{esc(section.title)}{badge}</h2>")
    parts.append(f'<p class="src">{esc(section.kind)} result from {esc(section.source)}</p>')
    for line in section.intro:
        parts.append(f'<p class="intro">{esc(line)}</p>')
    if section.headline:
        parts.append('<ul class="headline">' + "".join(f"<li>{esc(line)}</li>" for line in section.headline) + "</ul>")
    for figure in section.figures:
        counter[0] += 1
        parts.append(render_figure(figure, counter[0]))
    for table in section.tables:
        parts.append(render_table(table))
    if section.notes:
        parts.append('<ul class="notes">' + "".join(f"<li>{esc(note)}</li>" for note in section.notes) + "</ul>")
    if section.provenance:
        parts.append(f'<details class="prov"><summary>Provenance</summary><p>{esc(section.provenance)}</p></details>')
    parts.append("</section>")
    return "\n".join(parts)


def render(report: Report) -> str:
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    counter = [0]
    toc = "".join(
        f'<li><a href="#{esc(s.key)}">{esc(s.title)}</a>' + (f" &mdash; {esc(s.badge)}" if s.badge else "") + "</li>" for s in report.sections
    )
    sections = "\n".join(render_section(section, counter) for section in report.sections)
    sources = Table(
        "Result files",
        ["file", "kind", "schema", "created", "provenance"],
        [],
    )
    sources.rows = [
        [Cell(str(s["path"]), str(s["path"])), Cell(str(s["kind"]), str(s["kind"])), Cell(str(s["schema_version"]), str(s["schema_version"])),
         Cell(str(s["created_at"] or "-"), str(s["created_at"] or "")), Cell(str(s["provenance"]), str(s["provenance"]))]
        for s in report.sources
    ]
    sources.numeric = [False] * 5
    sources.key = "sources"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(report.title)}</title>
<script>{TRAP_JS}</script>
<style>{CSS}</style>
</head>
<body data-report-status="loading">
<header class="top"><h1>{esc(report.title)}</h1>
<p>Generated {esc(now)} from {len(report.sources)} result file(s). Click a column header to sort a table.</p></header>
<main>
<pre id="report-errors" hidden></pre>
<nav class="toc"><b>Contents</b><ol>{toc}<li><a href="#sources-section">Result files and provenance</a></li></ol></nav>
{sections}
<section class="result" id="sources-section"><h2 id="sources-h">Result files and provenance</h2>{render_table(sources)}</section>
<footer>embedding-harness report: self-contained (no network resources); figures drawn with matplotlib.</footer>
</main>
<script>{SORT_JS}</script>
</body>
</html>
"""


def write(report: Report, path: str | Path) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(render(report), encoding="utf-8")
    tmp.replace(target)
    return target
