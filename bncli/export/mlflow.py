"""MLflow: one run per job (params: its resolved spec, flattened; metrics: every curve by step;
tags: comparison, command, arm, lr, seed and the verdicts it took part in), nested under one parent
run for the command or batch, which holds report.html as an artifact and every verdict as a tag.

A local `file:` store needs MLFLOW_ALLOW_FILE_STORE=true with MLflow 3 (bncli sets it for a file:
URI or a plain folder when it is unset); `sqlite:///x.db` needs the full `mlflow` package."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bncli.errors import ExtraMissingError, UsageError
from bncli.export.series import RunRef, claims_of_run, flatten, job_spec, run_series
from bncli.results import Claim, CommandResult

_BAD = re.compile(r"[^A-Za-z0-9_\-. :/]")
PARAM_MAX = 6000  # MLflow's limit on a param value


def metric_key(name: str) -> str:
    """A name MLflow accepts (alphanumerics, _ - . space : /)."""
    return _BAD.sub("_", name)


def _client(tracking_uri: str) -> Any:
    if tracking_uri.startswith("file:") or "://" not in tracking_uri:
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise ExtraMissingError("MLflow export needs mlflow (or mlflow-skinny): pip install 'bncli[mlflow]'") from None
    try:
        return MlflowClient(tracking_uri=tracking_uri)
    except Exception as exc:  # an unknown scheme, a store MLflow refuses
        raise UsageError(f"--tracking-uri {tracking_uri}: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None


def _verdict_tags(claims: Sequence[Claim], prefix: str = "verdict") -> dict[str, str]:
    return {metric_key(f"{prefix}.{c.claim}.lr_{c.lr:g}.{c.arm}_vs_{c.baseline}"): c.verdict for c in claims}


def _log_in_batches(client: Any, run_id: str, metrics: list[Any] = (), params: list[Any] = (),
                    tags: list[Any] = (), progress: Any = None) -> None:
    metrics, params, tags = list(metrics), list(params), list(tags)
    for i in range(0, max(len(metrics), 1), 1000):  # MLflow's limits per log_batch call
        client.log_batch(run_id, metrics=metrics[i:i + 1000])
        if progress is not None:
            progress(advance=len(metrics[i:i + 1000]))
    for i in range(0, len(params), 100):
        client.log_batch(run_id, params=params[i:i + 100])
    if tags:
        client.log_batch(run_id, tags=tags)


KEY_MAX = 250  # MLflow's limit on a tag key and a run name


def _check_names(results: Sequence[tuple[str, CommandResult]]) -> None:
    """Every tag key and run name within MLflow's limit, before any run is made (a long spec or
    comparison name would otherwise fail half-way, after the parent run was logged)."""
    for name, res in results:
        keys = [*_verdict_tags(res.claims, f"verdict.{name}"), *(RunRef(name, res.command, r).name for r in res.runs)]
        for key in keys:
            if len(key) > KEY_MAX:
                raise UsageError(f"MLflow: the name {key[:60]!r}... has {len(key)} characters (MLflow takes at "
                                 f"most {KEY_MAX} in a tag key or run name): shorten the spec's or comparison's name")


def export_mlflow(results: Sequence[tuple[str, CommandResult]], tracking_uri: str,
                  experiment: str = "bncli", parent_name: str = "bncli", report_html: str | Path | None = None,
                  parent_tags: dict[str, str] | None = None, progress: Any = None) -> dict[str, Any]:
    """Log every job of `results` ((comparison, result) pairs) under one parent run; return
    {"experiment_id", "parent_run_id", "runs": {run name: run id}}."""
    import time

    from mlflow.entities import Metric, Param, RunTag

    client = _client(tracking_uri)
    _check_names(results)
    now = int(time.time() * 1000)
    try:
        exp = client.get_experiment_by_name(experiment)
        exp_id = exp.experiment_id if exp is not None else client.create_experiment(experiment)
    except Exception as exc:
        raise UsageError(f"--tracking-uri {tracking_uri}: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    parent = client.create_run(exp_id, run_name=parent_name,
                               tags={"bncli.kind": "parent", **(parent_tags or {})})
    pid = parent.info.run_id
    tags = {}
    for name, res in results:
        tags.update(_verdict_tags(res.claims, f"verdict.{name}"))
    _log_in_batches(client, pid, tags=[RunTag(k, v) for k, v in tags.items()])
    if report_html is not None:
        client.log_artifact(pid, str(report_html))
    runs: dict[str, str] = {}
    if progress is not None:
        progress(total=sum(len(res.runs) for _, res in results))
    for name, res in results:
        for r in res.runs:
            ref = RunRef(name, res.command, r)
            run = client.create_run(exp_id, run_name=ref.name, tags={
                "mlflow.parentRunId": pid, "comparison": name.rsplit("/", 1)[0], "command": res.command,
                "arm": r.arm, "lr": f"{r.lr:g}", "seed": str(r.seed),
                "diverged_at": "" if r.diverged_at is None else str(r.diverged_at),
                "interrupted": str(r.interrupted).lower()})
            rid = run.info.run_id
            params = [Param(k[:250], v[:PARAM_MAX]) for k, v in flatten(job_spec(res, r)).items()]
            metrics = [Metric(metric_key(m), v, now, s) for m, pts in run_series(r).items() for s, v in pts]
            vt = _verdict_tags(claims_of_run(res, r))
            if progress is not None:
                progress(total_points=len(metrics))
            _log_in_batches(client, rid, metrics, params, [RunTag(k, v) for k, v in vt.items()], progress)
            if progress is not None:
                progress(run_done=1)
            client.set_terminated(rid, "KILLED" if r.interrupted else "FINISHED")
            runs[ref.name] = rid
    client.set_terminated(pid, "FINISHED")
    return {"experiment_id": exp_id, "parent_run_id": pid, "runs": runs}


def export_result(path: Path, tracking_uri: str, experiment: str = "bncli", progress: Any = None) -> dict[str, Any]:
    """`bncli export mlflow`: a saved result (folder or JSON) under one parent run, with the
    folder's report.html as its artifact (drawn now, into a temporary folder, when it is missing)."""
    import tempfile

    from bncli.saved import BatchResult, load_result, named_results

    path = Path(path)
    loaded = load_result(path)
    folder = path if path.is_dir() else path.parent
    label = loaded.doc.get("batch_file") if isinstance(loaded, BatchResult) else None
    label = label or (f"{loaded.spec.get('name', 'result')} · {loaded.command}"
                      if isinstance(loaded, CommandResult) else str(path))
    with tempfile.TemporaryDirectory(prefix="bncli-mlflow-") as tmp:
        html: Path | None = folder / "report.html"
        if not html.is_file():
            html = None
            if (folder / "summary.json").is_file() or (folder / "batch.json").is_file():
                from bncli.render.report import build_report
                from bncli.render.report_html import to_html

                html = Path(tmp) / "report.html"
                html.write_text(to_html(build_report(folder, jobs=1)), encoding="utf-8")
        return export_mlflow(named_results(loaded), tracking_uri, experiment, parent_name=f"bncli {label}",
                             report_html=html, parent_tags={"bncli.source": str(path)}, progress=progress)
