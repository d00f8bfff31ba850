"""Self-contained HTML report of a profile document: static tables plus plots drawn as inline SVG
by a small inline script (no CDN, no external files; opens offline).

Plots: per-kernel latency breakdown (top kernels, labelled with the graph nodes they cover),
time per operator type, latency distribution (histogram with p50/p90/p99 markers) and the
latency of every run in order (drift/outliers). When drawing succeeds the script sets
`data-plots-drawn` on <body>; any script error is written into #script-errors and counted in
`data-script-errors` (the headless-browser test reads both).
"""

from __future__ import annotations

import html
import json
from typing import Any

from autogo_deploy.report.json_report import graph_nodes_label

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d2330;max-width:1100px}
h1{font-size:1.4em;margin-bottom:4px} h2{font-size:1.1em;margin-top:28px;border-bottom:1px solid #dde;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0;font-size:.9em} td,th{border:1px solid #dde;padding:3px 8px;text-align:left}
th{background:#f3f5f9} td.num{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#667;font-size:.85em} .plot{margin:8px 0 20px} svg text{font-size:11px;fill:#1d2330}
.bar{fill:#4c72b0} .bar2{fill:#55a868} .hist{fill:#8172b2} .dot{fill:#4c72b0}
.marker{stroke:#c44e52;stroke-width:1.5} .axis{stroke:#889;stroke-width:1}
#script-errors{color:#b00;white-space:pre-wrap}
"""

_SCRIPT = r"""
(function(){
  var errors = [];
  function report(msg){ errors.push(msg); var el=document.getElementById('script-errors');
    el.textContent = errors.join('\n'); document.body.setAttribute('data-script-errors', String(errors.length)); }
  window.addEventListener('error', function(e){ report('error: ' + e.message); });
  var NS = 'http://www.w3.org/2000/svg';
  function el(tag, attrs, parent, text){ var n=document.createElementNS(NS, tag);
    for (var k in attrs){ n.setAttribute(k, attrs[k]); } if (text!==undefined){ n.textContent=text; }
    if (parent){ parent.appendChild(n); } return n; }
  function svg(id, w, h){ var host=document.getElementById(id); var s=el('svg',{width:w,height:h,viewBox:'0 0 '+w+' '+h,role:'img'});
    host.appendChild(s); return s; }
  function fmt(v){ return v>=100 ? v.toFixed(1) : v>=1 ? v.toFixed(3) : v.toPrecision(3); }
  function bars(id, rows, cls){  // rows: [{label, value, title}]
    if (!rows.length){ document.getElementById(id).textContent='No per-node data (run with per-node profiling).'; return 0; }
    var w=1000, rowH=20, left=330, h=rows.length*rowH+30; var s=svg(id, w, h);
    var max=Math.max.apply(null, rows.map(function(r){return r.value;})) || 1;
    rows.forEach(function(r,i){ var y=10+i*rowH; var bw=Math.max(1,(w-left-150)*r.value/max);
      var t=el('text',{x:left-6,y:y+13,'text-anchor':'end'},s,r.label.length>48?r.label.slice(0,47)+'\u2026':r.label);
      var b=el('rect',{x:left,y:y+2,width:bw,height:rowH-5,'class':cls},s); el('title',{},b,r.title);
      el('text',{x:left+bw+4,y:y+13},s,r.text); });
    el('line',{x1:left,y1:6,x2:left,y2:h-14,'class':'axis'},s); return 1; }
  function histogram(id, samples, lat){
    var w=1000,h=260,l=60,r=20,t=20,b=40; var s=svg(id,w,h);
    var lo=Math.min.apply(null,samples), hi=Math.max.apply(null,samples); if (hi<=lo){ hi=lo*1.01+1e-9; }
    var cap=Math.min(hi, lat.p99_ms + 3*(lat.p99_ms-lat.p50_ms) + 1e-9); var nb=Math.min(60, Math.max(5, Math.ceil(Math.sqrt(samples.length))));
    var width=(cap-lo)/nb || 1e-9; var counts=new Array(nb).fill(0), over=0;
    samples.forEach(function(v){ if (v>cap){ over++; return; } var k=Math.min(nb-1, Math.floor((v-lo)/width)); counts[k]++; });
    var cmax=Math.max.apply(null,counts)||1; var x=function(v){return l+(w-l-r)*(v-lo)/(cap-lo);};
    counts.forEach(function(c,k){ var bh=(h-t-b)*c/cmax; var rect=el('rect',{x:x(lo+k*width)+0.5,y:h-b-bh,width:Math.max(1,(w-l-r)/nb-1),height:bh,'class':'hist'},s);
      el('title',{},rect,c+' runs in ['+fmt(lo+k*width)+', '+fmt(lo+(k+1)*width)+') ms'); });
    el('line',{x1:l,y1:h-b,x2:w-r,y2:h-b,'class':'axis'},s);
    for (var i=0;i<=5;i++){ var v=lo+(cap-lo)*i/5; el('text',{x:x(v),y:h-b+16,'text-anchor':'middle'},s,fmt(v)); }
    el('text',{x:(w+l)/2,y:h-6,'text-anchor':'middle'},s,'latency (ms)' + (over? '  ('+over+' runs beyond '+fmt(cap)+' ms not shown)':''));
    [['p50',lat.p50_ms],['p90',lat.p90_ms],['p99',lat.p99_ms]].forEach(function(p){ if (p[1]>cap) return;
      el('line',{x1:x(p[1]),y1:t,x2:x(p[1]),y2:h-b,'class':'marker'},s); el('text',{x:x(p[1])+3,y:t+10},s,p[0]); });
    return 1; }
  function series(id, samples){
    var w=1000,h=200,l=60,r=20,t=10,b=30; var s=svg(id,w,h);
    var lo=Math.min.apply(null,samples), hi=Math.max.apply(null,samples); if (hi<=lo){ hi=lo*1.01+1e-9; }
    var n=samples.length, step=Math.max(1, Math.floor(n/2000));
    for (var i=0;i<n;i+=step){ el('circle',{cx:l+(w-l-r)*i/Math.max(1,n-1),cy:h-b-(h-t-b)*(samples[i]-lo)/(hi-lo),r:1.6,'class':'dot'},s); }
    el('line',{x1:l,y1:h-b,x2:w-r,y2:h-b,'class':'axis'},s);
    el('line',{x1:l,y1:t,x2:l,y2:h-b,'class':'axis'},s);
    el('text',{x:l-4,y:t+8,'text-anchor':'end'},s,fmt(hi)); el('text',{x:l-4,y:h-b,'text-anchor':'end'},s,fmt(lo));
    el('text',{x:(w+l)/2,y:h-8,'text-anchor':'middle'},s,'run index (0..'+(n-1)+'); latency in ms on the vertical axis');
    return 1; }
  try {
    var doc = JSON.parse(document.getElementById('profile-data').textContent);
    var ops = doc.operators, drawn = 0;
    var kernels = ops ? ops.kernels.slice(0, 25) : [];
    drawn += bars('plot-kernels', kernels.map(function(k){ var nodes = k.graph_nodes === undefined ? 'n/a (not mapped by this backend)'
      : (k.graph_nodes.length ? k.graph_nodes.join(', ') : '(none: inserted by the runtime)');
      var label=k.name+' ['+k.op_type+']'; return {label:label, value:k.ms, text:fmt(k.ms)+' ms ('+(100*k.share).toFixed(1)+'%)',
      title:label+'\ngraph nodes: '+nodes+'\nmapping: '+(k.mapping||'n/a')}; }), 'bar');
    drawn += bars('plot-optypes', (ops ? ops.by_op_type : []).map(function(o){ return {label:o.op_type, value:o.ms,
      text:fmt(o.ms)+' ms ('+(100*o.share).toFixed(1)+'%)', title:o.kernels+' kernels'}; }), 'bar2');
    drawn += histogram('plot-hist', doc.samples_ms, doc.latency);
    drawn += series('plot-series', doc.samples_ms);
    document.body.setAttribute('data-plots-drawn', String(drawn));
    if (!errors.length){ document.body.setAttribute('data-script-errors', '0'); }
  } catch (e) { report('exception: ' + (e && e.stack ? e.stack : e)); }
})();
"""


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) < 1e5 else f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _rows(pairs: list[tuple[str, Any]]) -> str:
    return "".join(
        f"<tr><th>{html.escape(k)}</th><td class='num'>{html.escape(_fmt(v))}</td></tr>" for k, v in pairs
    )


def _kernel_table(doc: dict[str, Any], limit: int = 15) -> str:
    ops = doc.get("operators")
    if not ops:
        return "<p class='muted'>No per-node profile in this document.</p>"
    head = "<tr><th>kernel</th><th>op type</th><th>ms</th><th>share</th><th>graph nodes</th><th>mapping</th></tr>"
    body = "".join(
        "<tr><td>{}</td><td>{}</td><td class='num'>{}</td><td class='num'>{:.1f}%</td><td>{}</td><td>{}</td></tr>".format(
            html.escape(k["name"]),
            html.escape(k["op_type"]),
            _fmt(float(k["ms"]), 4),
            100 * k["share"],
            html.escape(graph_nodes_label(k)),
            html.escape(str(k.get("mapping", "n/a"))),
        )
        for k in ops["kernels"][:limit]
    )
    return f"<table>{head}{body}</table>"


def render_profile_html(doc: dict[str, Any]) -> str:
    """The report as one HTML string (inline CSS, inline data, inline script)."""
    lat, power, model, target = doc["latency"], doc.get("power") or {}, doc["model"], doc["target"]
    # "<" only occurs inside JSON strings, so \u003c keeps the JSON valid and the <script> unbreakable.
    data = json.dumps(doc, sort_keys=True, allow_nan=False).replace("<", "\\u003c")
    title = f"autogo-deploy profile: {model.get('source', '?')} on {target['name']}"
    latency_rows = _rows(
        [
            ("p50 (ms)", lat["p50_ms"]),
            ("p90 (ms)", lat["p90_ms"]),
            ("p99 (ms)", lat["p99_ms"]),
            ("mean (ms)", lat["mean_ms"]),
            ("std (ms)", lat["std_ms"]),
            ("runs", lat["runs"]),
            (
                "median 95% CI half-width",
                f"±{100 * lat['ci95_rel']:.2f}%" if lat.get("ci95_rel") is not None else None,
            ),
            ("stop reason", lat.get("stop_reason")),
        ]
    )
    power_rows = _rows(
        [
            ("energy per inference (mJ)", power.get("energy_mj")),
            ("average power (W)", power.get("power_w")),
            ("method", power.get("method") or "unavailable"),
        ]
    )
    model_rows = _rows(
        [
            ("nodes", model.get("nodes")),
            ("MACs", model.get("macs")),
            ("parameters", model.get("params")),
            ("sha256", (model.get("sha256") or "")[:16]),
        ]
    )
    env = doc.get("env", {})
    method = doc.get("method", {})
    env_rows = _rows(
        [
            ("CPU", env.get("cpu_model")),
            ("affinity", ",".join(str(c) for c in env.get("affinity") or [])),
            ("governor", env.get("governor")),
            ("threads", method.get("threads")),
            ("execution provider", method.get("ep") or env.get("execution_provider")),
            ("libraries", ", ".join(f"{k} {v}" for k, v in (env.get("libraries") or {}).items())),
        ]
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<meta name="viewport" content="width=device-width,initial-scale=1"><style>{_STYLE}</style></head>
<body data-plots-drawn="0" data-script-errors="pending">
<h1>{html.escape(title)}</h1>
<p class="muted">target {html.escape(target["name"])} ({html.escape(target["backend"])}, {html.escape(target["device"])}):
{html.escape(target.get("description") or "")}. Schema version {doc["schema_version"]},
autogo-deploy {html.escape(str(doc["tool"]["version"]))}.</p>
<div id="script-errors"></div>
<h2>Latency</h2><table>{latency_rows}</table>
<h2>Power and energy</h2><table>{power_rows}</table>
<p class="muted">Every power figure names its method; "modeled" figures are estimates, not measurements.</p>
<h2>Model</h2><table>{model_rows}</table>
<h2>Per-kernel latency breakdown</h2>
<p class="muted">Per-kernel times as the backend reports them (a runtime profiler includes its own
overhead, so the sum can exceed the end-to-end latency). Hover a bar for the graph nodes each kernel covers.</p>
<div class="plot" id="plot-kernels"></div>
<h2>Time per operator type</h2><div class="plot" id="plot-optypes"></div>
{_kernel_table(doc)}
<h2>Latency distribution</h2><div class="plot" id="plot-hist"></div>
<h2>Latency per run</h2><div class="plot" id="plot-series"></div>
<h2>Environment</h2><table>{env_rows}</table>
<script type="application/json" id="profile-data">{data}</script>
<script>{_SCRIPT}</script>
</body></html>
"""
