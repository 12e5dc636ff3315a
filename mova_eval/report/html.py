"""The HTML report: one self-contained file (inline CSS, inline script, figures as data: URIs — nothing is fetched
from the network), readable on a laptop and a phone (tables scroll sideways inside their box; the page does not).

Every table is sortable by any column (click or Enter on a header; rows sort within their suite group, cells with
no value always last). Each model's provenance — runs, config hash, weights sha256, package versions, git
revision — is in a collapsible block.
"""
from __future__ import annotations

import base64
import html
import json
import math
import re
from typing import TYPE_CHECKING

from mova_eval.report.render import ARROW, count_text, header_text
from mova_eval.report.tables import DASH, Cell, Column, Table, format_number

if TYPE_CHECKING:
    from mova_eval.report import Report

CSS = """
code{font:.9em ui-monospace,Menlo,Consolas,monospace;background:#f3f5f7;padding:0 3px;border-radius:3px}
:root{--fg:#1d232a;--muted:#5b6672;--line:#d9dee3;--best:#0b5d1e;--bg:#fff;--head:#f3f5f7}
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg);
margin:0 auto;padding:12px 16px 48px;max-width:1200px}
h1{font-size:1.5rem;margin:.4em 0}h2{font-size:1.2rem;margin:1.6em 0 .4em}h3{font-size:1.05rem;margin:1.2em 0 .3em}
p.caption,.meta{color:var(--muted);font-size:.9rem}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;border:1px solid var(--line);border-radius:6px}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:6px 8px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap;vertical-align:top}
th:first-child,td:first-child{text-align:left}
tbody.rows td:first-child{position:sticky;left:0;background:var(--bg);z-index:1;white-space:normal;min-width:7em}
thead th{background:var(--head);position:sticky;top:0;cursor:pointer;user-select:none}
thead th[aria-sort=ascending]::after{content:" ▲";font-size:.7em}
thead th[aria-sort=descending]::after{content:" ▼";font-size:.7em}
tbody.group th{background:#fafbfc;text-align:left;font-weight:600;cursor:default}
tr.published td{color:var(--muted);font-style:italic}
td .ci{color:var(--muted);font-size:.85em}td .n{display:block;color:var(--muted);font-size:.75em}
td.best .v{font-weight:700;color:var(--best)}td.second .v{text-decoration:underline}
sup{font-size:.7em;color:#a33}
ol.notes{font-size:.88rem;color:var(--muted)}
p,li,dd,figcaption{overflow-wrap:anywhere}
figure{margin:12px 0;display:inline-block;max-width:100%;vertical-align:top}
figure img{max-width:100%;height:auto;border:1px solid var(--line);border-radius:4px}
figcaption{font-size:.8rem;color:var(--muted)}
details{margin:6px 0;border:1px solid var(--line);border-radius:6px;padding:6px 10px}
details summary{cursor:pointer;font-weight:600}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;font-size:.85rem;margin:8px 0}
dt{color:var(--muted)}dd{margin:0;word-break:break-all}
@media (max-width:640px){body{font-size:14px;padding:8px}th,td{padding:4px 6px}}
"""

SCRIPT = """
(function(){
  function key(td){var v=td.getAttribute('data-v');if(v===null||v===''){return null;}
    var f=parseFloat(v);return isNaN(f)?v.toLowerCase():f;}
  function sortTable(tbl,idx,th){
    var asc=th.getAttribute('aria-sort')!=='ascending';
    tbl.querySelectorAll('thead th').forEach(function(h){h.removeAttribute('aria-sort');});
    th.setAttribute('aria-sort',asc?'ascending':'descending');
    tbl.querySelectorAll('tbody.rows').forEach(function(tb){
      var rows=Array.prototype.slice.call(tb.rows);
      rows.sort(function(a,b){var x=key(a.cells[idx]),y=key(b.cells[idx]);
        if(x===null&&y===null){return 0;} if(x===null){return 1;} if(y===null){return -1;}
        if(x<y){return asc?-1:1;} if(x>y){return asc?1:-1;} return 0;});
      rows.forEach(function(r){tb.appendChild(r);});
    });
  }
  document.querySelectorAll('table.sortable').forEach(function(tbl){
    tbl.querySelectorAll('thead th').forEach(function(th,idx){
      th.tabIndex=0;th.setAttribute('role','columnheader');
      th.addEventListener('click',function(){sortTable(tbl,idx,th);});
      th.addEventListener('keydown',function(e){
        if(e.key==='Enter'||e.key===' '){e.preventDefault();sortTable(tbl,idx,th);}});
    });
  });
  window.movaReportReady=true;
})();
"""

_CODE = re.compile(r"`([^`]+)`")


def e(text: str) -> str:
    """Escape for HTML; `code` spans (as in Markdown) become <code> elements."""
    return _CODE.sub(r"<code>\1</code>", html.escape(str(text)))


def a(text: str) -> str:
    """Escape for an attribute value (code spans lose their backticks)."""
    return html.escape(str(text).replace("`", ""), quote=True)


def _v(x: float) -> str:
    return repr(float(x)) if isinstance(x, float) and math.isfinite(x) else ""


def _cell_html(cell: Cell, col: Column, t: Table) -> str:
    notes = "".join(f'<sup title="{a(t.footnotes[i - 1])}">{i}</sup>' for i in cell.footnotes)
    if not cell.has_value:
        title = "; ".join(t.footnotes[i - 1] for i in cell.footnotes) or cell.note
        return f'<td data-v="" title="{a(title)}">{DASH}{notes}</td>'
    cls = {1: ' class="best"', 2: ' class="second"'}.get(cell.rank or 0, "")
    ci = ""
    tip = []
    if cell.has_ci:
        ci = f' <span class="ci">± {e(format_number(cell.half_width, col.digits))}</span>'
        tip.append(f"95% CI [{cell.ci_low:.6g}, {cell.ci_high:.6g}]")
    n = count_text(cell)
    if cell.note:
        tip.append(cell.note)
    ntxt = f'<span class="n">{e(n)}</span>' if n else ""
    return (f'<td{cls} data-v="{_v(cell.mean)}" title="{a("; ".join(tip))}"><span class="v">'
            f'{e(format_number(cell.mean, col.digits))}</span>{ci}{notes}{ntxt}</td>')


def table_html(t: Table, *, level: int = 2) -> str:
    out = [f'<h{level} id="{a(t.name)}">{e(t.title)}</h{level}>']
    if t.caption:
        out.append(f'<p class="caption">{e(t.caption)}</p>')
    ths = ['<th scope="col">model</th>']  # the group (suite, or ours / published) heads each block of rows
    for c in t.columns:
        tip = "; ".join(x for x in (c.protocol, c.unit) if x)
        ths.append(f'<th scope="col" title="{a(tip)}">{e(header_text(c))}</th>')
    out.append(f'<div class="scroll"><table class="sortable" data-table="{a(t.name)}"><thead><tr>{"".join(ths)}'
               f'</tr></thead>')
    ncols = len(t.columns) + 1
    for g in t.groups():
        out.append(f'<tbody class="group"><tr><th colspan="{ncols}">{e(g)}</th></tr></tbody><tbody class="rows">')
        for r in (r for r in t.rows if r.group == g):
            cls = ' class="published"' if r.published else ""
            label = e(r.label) + (" <small>(published)</small>" if r.published else "")
            tds = [f'<td data-v="{a(r.label)}">{label}</td>']
            tds += [_cell_html(r.cells.get(c.key, Cell()), c, t) for c in t.columns]
            out.append(f"<tr{cls}>{''.join(tds)}</tr>")
        out.append("</tbody>")
    out.append("</table></div>")
    if t.footnotes:
        out.append('<ol class="notes">' + "".join(f"<li>{e(n)}</li>" for n in t.footnotes) + "</ol>")
    return "\n".join(out)


def _provenance_html(report: Report) -> str:
    out = ['<h2 id="provenance">Provenance</h2>']
    for mr in report.data.models:
        for run in mr.runs:
            items = [("suite", f"{run.suite} ({run.suite_source})" if run.suite_source else run.suite),
                     ("run", f"{run.run_id} — {run.path}"), ("status", run.status or "(summary file)"),
                     ("generator", run.generator), ("config hash", run.config_hash or "?"),
                     ("git revision", run.git_revision or "unknown"), ("device", run.device or "?"),
                     ("created", run.created or "?"), ("finished", run.finished or "?")]
            for fam, st in sorted(run.metrics.items()):
                state = f"v{st.version}" + ("" if st.available else f" — not run: {st.reason}")
                if st.options:
                    state += " — options " + json.dumps(st.options, sort_keys=True, default=str)
                items.append((f"metric {fam}", state))
            for w, sha in sorted(run.weights.items()):
                items.append((f"weights {w}", f"sha256 {sha}"))
            for pkg, ver in sorted(run.packages.items()):
                items.append((f"package {pkg}", ver))
            dl = "".join(f"<dt>{e(k)}</dt><dd>{e(str(v))}</dd>" for k, v in items)
            out.append(f"<details><summary>{e(mr.model)} · {e(mr.suite)} · run {e(run.run_id)}</summary>"
                       f"<dl>{dl}</dl></details>")
    return "\n".join(out)


def report_html(report: Report) -> str:
    body = [f"<h1>{e(report.title)}</h1>",
            f'<p class="meta">mova-eval {e(report.version)} · {len(report.sources)} source(s) · '
            f'{len(report.data.models)} model × suite</p>',
            table_html(report.main)]
    if report.main.provenance:
        body.append('<ul class="meta">' + "".join(f"<li>{e(p)}</li>" for p in report.main.provenance) + "</ul>")
    if report.figures:
        body.append('<h2 id="figures">Figures</h2>')
        for f in report.figures:
            uri = "data:image/png;base64," + base64.b64encode(f.png).decode()
            body.append(f'<figure><img alt="{a(f.title)}" src="{uri}"><figcaption>{e(f.title)}</figcaption></figure>')
    if report.breakdowns:
        body.append('<h2 id="breakdowns">Breakdowns</h2>')
        body += [table_html(b, level=3) for b in report.breakdowns]
    if getattr(report, "sections", None):
        from mova_eval.sanity import markdown_fragment_html

        for title, md in report.sections:
            body.append(f"<h2>{e(title)}</h2>" + markdown_fragment_html(md))
    body.append(_provenance_html(report))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{e(report.title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(body) + f"\n<script>{SCRIPT}</script>\n</body></html>\n")


__all__ = ["report_html", "table_html", "ARROW"]
