"""The report as one self-contained HTML page (report.html): the sweep's name, links and
settings, its cells' states, the tables and the figures (inline PNG), its runs with their ids
and links. One file, no scripts and nothing fetched, so it reads the same opened from disk
and in MLflow's artifact viewer (a sandboxed frame: links there are copied, not followed).
"""

from __future__ import annotations

import base64
import html
import json
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from orchestrator import report, status
from orchestrator.record import store
from orchestrator.record.schema import RunView

STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328;
       max-width: 1180px; margin: 0 auto; padding: 24px 32px 64px; background: #fff; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 19px; margin: 36px 0 10px;
     padding-bottom: 4px; border-bottom: 1px solid #d0d7de; }
.sub { color: #59636e; margin: 0 0 16px; } a { color: #0969da; } code, pre { font: 13px ui-monospace, monospace; }
table { border-collapse: collapse; margin: 10px 0 22px; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: 600; padding: 4px 0 6px; }
th, td { border: 1px solid #d0d7de; padding: 5px 10px; }
th { background: #f6f8fa; text-align: left; }
td:not(:first-child) { text-align: right; white-space: nowrap; }
tr:nth-child(even) td { background: #fbfcfd; }
table.plain td { text-align: left; white-space: normal; }
.counts span { display: inline-block; margin: 0 8px 6px 0; padding: 3px 10px; border-radius: 12px;
               background: #eef1f4; } .counts .finished { background: #dafbe1; }
.counts .failed, .counts .killed { background: #ffebe9; } .counts .running { background: #ddf4ff; }
figure { margin: 12px 0 28px; } figure img { max-width: 100%; border: 1px solid #d0d7de; }
figcaption { color: #59636e; font-size: 13px; }
.pictures { display: flex; flex-wrap: wrap; gap: 18px; } .pictures figure { margin: 0; }
.pictures img { max-height: 260px; }
details { margin: 8px 0; } summary { cursor: pointer; color: #59636e; }
pre { background: #f6f8fa; padding: 12px; overflow-x: auto; border-radius: 6px; }
"""

CELL_RUNS_LISTED = 500  # more are in MLflow, under their pretrain runs


def page(
    rec: report.SweepRuns, tables: Sequence[report.Table], figures: Sequence[Path],
    run_pictures: Sequence[Path], spec: Mapping[str, Any] | None, converged: Sequence[str] = (),
    findings: str | None = None,
) -> str:
    """The page of a sweep: `tables` as shown, `figures` (the kinds' PNG files) inline,
    `run_pictures` (runs/RUN_NAME/*.png) under their pretrain run, `spec` (the resolved
    experiment file) as its settings, `converged` (report.convergence) as a list, `findings`
    (the findings view's HTML table) above the tables."""
    esc = html.escape
    experiment = store.ui_link(rec.uri, rec.experiment_id)
    counts = status.counts(status.cell_states(rec.cells, rec.cell_runs, rec.pretrain))
    parts = [
        f"<h1>{esc(rec.name)}</h1>",
        f'<p class="sub">monosweep report, {time.strftime("%Y-%m-%d %H:%M %Z")}. MLflow store '
        f"<code>{esc(store.shown(rec.uri))}</code>, experiment {esc(rec.experiment_id)}: "
        f"{_link(experiment, 'training runs')}; sweep run {_run_link(rec, rec.sweep_run_id)}</p>",
        '<h2>Cells</h2><p class="counts">'
        + "".join(f'<span class="{s}">{s} {n}</span>' for s, n in counts.items() if n)
        + f"</p><p>{len(rec.cells)} cells in {len(rec.pretrain)} pretrain runs.</p>",
        *([f"<h2>Findings</h2>{findings}"] if findings else []),
        "<h2>Tables</h2>",
        *(report.render(t, "html") for t in tables),
    ]
    if converged:
        parts.append("<h2>Did the pre-training converge?</h2><ul>"
                     + "".join(f"<li>{esc(line)}</li>" for line in converged) + "</ul>")
    if figures:
        parts.append("<h2>Figures</h2>")
        parts += [_figure(p, p.stem.replace("_", " ")) for p in figures]
    if spec is not None:
        parts.append("<h2>Settings</h2>" + _settings(spec))
    parts.append("<h2>Runs</h2>" + _runs(rec, run_pictures))
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(rec.name)}: monosweep report</title><style>{STYLE}</style></head>"
            f"<body>\n{body}\n</body></html>\n")


def _link(url: str, text: str) -> str:
    return f'<a href="{html.escape(url)}">{html.escape(text)}</a>'


def _run_link(rec: report.SweepRuns, run_id: str) -> str:
    return _link(store.ui_link(rec.uri, rec.experiment_id, run_id), run_id)


def _figure(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _settings(spec: Mapping[str, Any]) -> str:
    """The grid's axes and the other settings, a row each; the whole file folded below."""
    rows = [(f"grid.{axis}", values) for axis, values in spec.get("grid", {}).items() if values]
    rows += [(k, v) for k, v in spec.items() if k not in ("name", "grid") and v not in ([], {}, None)]
    body = "".join(
        f"<tr><th>{html.escape(k)}</th><td><code>{html.escape(json.dumps(v, separators=(', ', ': ')))}</code></td></tr>"
        for k, v in rows
    )
    full = html.escape(json.dumps(spec, indent=2))
    return (f'<table class="plain">{body}</table>'
            f"<details><summary>the resolved experiment file (spec.json)</summary><pre>{full}</pre></details>")


def _runs(rec: report.SweepRuns, run_pictures: Sequence[Path]) -> str:
    """A row per pretrain run (name, state, id, its cells' runs), then its pictures; the cell
    runs folded below."""
    pictures: dict[str, list[Path]] = defaultdict(list)
    for p in run_pictures:
        pictures[p.parent.name].append(p)
    cells_of: dict[str, list[RunView]] = defaultdict(list)
    keys = {c.key: c for c in rec.cells}
    for key, run in rec.cell_runs.items():
        if key in keys:
            cells_of[keys[key].pretrain_key].append(run)
    rows = "".join(
        f"<tr><td>{html.escape(run.name)}</td><td>{run.status.lower()}</td><td>{_run_link(rec, run.run_id)}</td>"
        f"<td>{len(cells_of[key])}</td></tr>"
        for key, run in rec.pretrain.items()
    )
    out = ('<table class="plain"><tr><th>pretrain run</th><th>state</th><th>run id (MLflow link)</th>'
           f"<th>cell runs</th></tr>{rows}</table>")
    cell_runs = [run for runs in cells_of.values() for run in runs]
    if cell_runs:
        listed = "".join(
            f"<tr><td>{html.escape(r.name)}</td><td>{r.status.lower()}</td><td>{_run_link(rec, r.run_id)}</td></tr>"
            for r in cell_runs[:CELL_RUNS_LISTED]
        )
        more = (
            f"<p>and {len(cell_runs) - CELL_RUNS_LISTED} more in MLflow</p>"
            if len(cell_runs) > CELL_RUNS_LISTED
            else ""
        )
        out += (
            f'<details><summary>{len(cell_runs)} cell runs</summary><table class="plain">'
            f"<tr><th>cell run</th><th>state</th><th>run id (MLflow link)</th></tr>{listed}</table>{more}</details>"
        )
    for run in rec.pretrain.values():
        shots = pictures.get(run.name.replace(" ", "_"), [])
        if shots:
            out += (f"<h3>{html.escape(run.name)}</h3><div class=\"pictures\">"
                    + "".join(_figure(p, p.stem.replace("_", " ")) for p in shots) + "</div>")
    return out
