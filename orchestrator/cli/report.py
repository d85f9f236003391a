"""Write the sweep's tables and figures, from MLflow alone, and attach them to the sweep run.

Tables in the chosen formats and views (the `paired` view: each row minus a reference row seed by
seed, with its 95% confidence interval; the `findings` view: the file's findings with their
estimates, adjusted intervals and p, degrees of freedom and verdicts): linear probes (one per
probe dataset, rows method x N x augmentation, columns conv1..conv5), finetuning (columns k
frozen layers), style transfer (columns the (content, style) pairs); figures as PNG, the
style-transfer grid among them; the conv1 filters and mono samples of every pretrain run. Works
on a partial sweep while it runs, and from another machine.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from orchestrator import figures, report, report_findings, report_page, report_paired
from orchestrator.errors import UserError
from orchestrator.evaluations import EVALUATIONS
from orchestrator.loading import load_spec
from orchestrator.record import store
from orchestrator.record.schema import resolve_uri


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="experiment file (YAML); its name, tracking_uri and findings are read")
    p.add_argument(
        "--format", default="md,csv", help=f"comma-separated, of {', '.join(report.FORMATS)} (default md,csv)"
    )
    p.add_argument("--view", default="mean,diff_random",
                   help=f"comma-separated, of {', '.join(report.VIEWS)} (findings: the file's findings decided)")
    p.add_argument("--reference", default="random", metavar="ROW",
                   help="the paired view's reference: a row's whole label, or a method with one row (default random)")
    p.add_argument("--out", type=Path, help="output folder (default reports/NAME)")
    p.add_argument(
        "--compare", metavar="OTHER", help="another experiment file: its tables side by side with this one's"
    )
    p.add_argument("--no-log", action="store_true", help="do not attach the report to the sweep run in MLflow")


def _sweep(path: str) -> report.SweepRuns:
    spec = load_spec(path)
    return report.load(resolve_uri(spec.tracking_uri), spec.name)


def _view(table: report.Table, view: str, reference: str) -> report.Table:
    if view == "mean":
        return table
    return report_paired.paired(table, reference) if view == "paired" else report.relative(table, view)


def _findings(path: str, rec: report.SweepRuns) -> report_findings.Standing:
    spec = load_spec(path)
    if not spec.findings:
        raise UserError(f"--view findings: {path} declares no `findings`")
    return report_findings.standing(spec, rec, Path(path))


def _text(fmt: str, findings: report_findings.Standing | None, shown: list[report.Table]) -> str:
    """The findings, then the tables, in a text format (md, latex)."""
    parts = [report_findings.render(findings, fmt)] if findings else []
    return "\n\n".join(parts + [report.render(t, fmt) for t in shown])


def main(args: argparse.Namespace) -> int:
    formats, views = args.format.split(","), args.view.split(",")
    for old in set(views) & set(report.RENAMED_VIEWS):
        print(f"--view {old} is deprecated: it is the `{report.RENAMED_VIEWS[old]}` view", file=sys.stderr)
    views = [report.RENAMED_VIEWS.get(v, v) for v in views]
    bad = [f for f in formats if f not in report.FORMATS] + [v for v in views if v not in report.VIEWS]
    if bad:
        print(f"--format/--view: {', '.join(map(repr, bad))} not allowed; formats: {', '.join(report.FORMATS)}; "
              f"views: {', '.join(report.VIEWS)}", file=sys.stderr)
        return 2
    rec = _sweep(args.file)
    findings = _findings(args.file, rec) if "findings" in views else None
    other = _sweep(args.compare) if args.compare else None
    out = args.out or Path("reports") / rec.name
    out.mkdir(parents=True, exist_ok=True)
    base = report.all_tables(rec)
    shown = [_view(t, v, args.reference) for v in views if v != "findings" for t in base]
    if "paired" in views and not any(t.rows for t in shown if t.view == "paired"):
        print(f"--view paired: no table has a row {args.reference!r}; see --reference", file=sys.stderr)
    if other:
        theirs = {(t.evaluation, t.metric, t.dataset): t for t in report.all_tables(other)}
        shown += [
            report.compare(t, theirs[key], rec.name, other.name)
            for t in base if (key := (t.evaluation, t.metric, t.dataset)) in theirs
        ]
    shown = [t for t in shown if t.rows]
    pictures = [
        picture
        for kind in EVALUATIONS
        if (own := [t for t in base if t.evaluation == kind.name and t.metric == kind.metrics[0]])
        for picture in kind.figures(rec, own, out)
        if picture is not None  # a figure whose axis does not vary is not drawn
    ]
    run_pictures = figures.run_pictures(rec, out / "runs")
    converged = report.convergence(rec)
    notes = (
        "\n\n## Did the pre-training converge?\n\n" + "\n".join(f"- {line}" for line in converged) if converged else ""
    )
    for fmt in formats:
        if fmt == "html":  # one self-contained page: settings, states, findings, tables, figures, runs
            decided = report_findings.render(findings, "html") if findings else None
            text = report_page.page(rec, shown, pictures, run_pictures, report.spec_of(rec), converged, decided)
        elif fmt == "csv":
            text = report.to_csv(shown)
            if findings:  # its own fields: a file of its own
                (out / "findings.csv").write_text(report_findings.render(findings, "csv"))
        else:
            text = _text(fmt, findings, shown) + (notes if fmt == "md" else "") + "\n"
        (out / f"report.{fmt}").write_text(text)
    print(_text("md", findings, shown) + notes)
    done = sum(run.status == "FINISHED" for key, run in rec.cell_runs.items() if key in {c.key for c in rec.cells})
    print(f"\n{done}/{len(rec.cells)} cells FINISHED. Wrote {len(formats)} table file(s) and "
          f"{len(pictures) + len(run_pictures)} figures to {out}")
    if not args.no_log:
        store.log_files(rec.uri, rec.sweep_run_id, out, "report")
        for table in shown:  # MLflow's table artifacts: the UI shows them as tables
            store.log_table(
                rec.uri, rec.sweep_run_id, report.columns(table), f"report/tables/{report.file_name(table)}.json"
            )
        if findings:
            store.log_table(rec.uri, rec.sweep_run_id, report_findings.columns(findings), "report/tables/findings.json")
        print(f"attached to the sweep run {rec.sweep_run_id} (artifacts: report/, tables in report/tables/): "
              f"{store.ui_link(rec.uri, rec.experiment_id, rec.sweep_run_id)}")
    return 0
