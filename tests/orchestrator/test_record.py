"""orchestrator.record against a real MLflow store (SQLite in tmp_path): the skip query reads
the truth, and the buffered recorder writes every value."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.record import queries, runs, schema
from orchestrator.record.recorder import MlflowRecorder, UnknownPart


@pytest.fixture
def tracking(store, monkeypatch) -> runs.Tracking:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return runs.open_sweep("s", store, {})


def open_run(tracking: runs.Tracking, key: str, kind: str = "cell") -> str:
    parent = tracking.sweep_run_id
    run_id, _ = runs.start_run(tracking, kind, key, key, parent, {"layer": "conv1"}, {})
    return run_id


def test_finished_counts_only_active_finished_runs_of_the_kind(tracking):
    uri, client = tracking.uri, MlflowClient(tracking.uri)
    done = open_run(tracking, "done")
    runs.end_run(uri, done)
    runs.end_run(uri, open_run(tracking, "failed"), RuntimeError("boom"))
    open_run(tracking, "running")  # a crash before the run ended: RUNNING, never FINISHED
    deleted = open_run(tracking, "deleted")
    runs.end_run(uri, deleted)
    client.delete_run(deleted)  # FINISHED, then deleted in the UI
    runs.end_run(uri, open_run(tracking, "pretrained", kind="pretrain"))
    reopened = open_run(tracking, "reopened")
    runs.end_run(uri, reopened)
    assert open_run(tracking, "reopened") == reopened  # resubmitted: RUNNING again

    expected = {"done": done}
    assert queries.finished(uri, tracking.experiment_id, "cell") == expected
    assert queries.searched_finished(uri, tracking.experiment_id, "cell") == expected
    client.restore_run(deleted)
    assert queries.finished(uri, tracking.experiment_id, "cell") == {**expected, "deleted": deleted}
    assert set(queries.finished(uri, tracking.experiment_id, "pretrain")) == {"pretrained"}
    assert queries.finished(uri, None, "cell") == {}


def test_finished_keeps_the_newest_run_of_a_key_as_search_runs_does(tracking):
    uri, client = tracking.uri, MlflowClient(tracking.uri)
    for start in (3000, 1000, 2000):  # two FINISHED runs of one key: the store holds what it holds
        tags = {schema.KIND: "cell", schema.KEY: "twice"}
        run = client.create_run(tracking.experiment_id, start_time=start, tags=tags)
        client.set_terminated(run.info.run_id, "FINISHED")
    newest = queries.finished(uri, tracking.experiment_id, "cell")
    assert newest == queries.searched_finished(uri, tracking.experiment_id, "cell")
    assert client.get_run(newest["twice"]).info.start_time == 3000


def test_cell_runs_of_an_older_store_are_read_as_cells_and_relabelled_when_rerun(tracking):
    """Stores written before evaluations became an axis call cell runs `probe`."""
    uri, client = tracking.uri, MlflowClient(tracking.uri)
    old = {}
    for key, status in (("old-done", "FINISHED"), ("old-failed", "FAILED")):
        run = client.create_run(tracking.experiment_id, tags={schema.KIND: "probe", schema.KEY: key})
        client.set_terminated(run.info.run_id, status)
        old[key] = run.info.run_id
    runs.end_run(uri, new := open_run(tracking, "new-done"))
    expected = {"old-done": old["old-done"], "new-done": new}
    assert queries.finished(uri, tracking.experiment_id, "cell") == expected
    assert queries.searched_finished(uri, tracking.experiment_id, "cell") == expected
    assert set(queries.latest_runs(uri, tracking.experiment_id, "cell")) == {"old-done", "old-failed", "new-done"}
    assert open_run(tracking, "old-failed") == old["old-failed"]  # rerun: reopened, not a second run
    assert client.get_run(old["old-failed"]).data.tags[schema.KIND] == "cell"


def test_the_recorder_buffers_and_end_writes_everything(tracking):
    uri, client = tracking.uri, MlflowClient(tracking.uri)
    runs = {"conv1": open_run(tracking, "a"), "conv2": open_run(tracking, "b")}
    recorder = MlflowRecorder(uri, runs)
    recorder.params({"feature_dim": 10}, "conv1")
    for step in (1, 2, 3):
        recorder.metrics({"top1": float(step)}, step)  # no layer: every run
    recorder.tag("note", "x", "conv2")
    assert client.get_metric_history(runs["conv1"], "top1") == []  # not written yet
    recorder.end()
    for run_id in runs.values():
        assert [m.value for m in client.get_metric_history(run_id, "top1")] == [1.0, 2.0, 3.0]
        assert client.get_run(run_id).info.status == "FINISHED"
    assert client.get_run(runs["conv1"]).data.params["feature_dim"] == "10"
    assert client.get_run(runs["conv2"]).data.tags[schema.TAG + "note"] == "x"


@pytest.mark.parametrize("write", [
    lambda r: r.metrics({"top1": 50.0}, 1, part="conv9"),
    lambda r: r.params({"feature_dim": 10}, "conv9"),
    lambda r: r.tag("note", "x", "conv9"),
    lambda r: r.text("{}", "config.json", "conv9"),
], ids=["metrics", "params", "tag", "text"])
def test_a_part_the_job_does_not_have_is_an_error_not_written_anywhere(tracking, write):
    """A worker routing a value to a part (cell) its job lacks gets an error; no cell's run gets
    the value (before: every run of the job did)."""
    uri, client = tracking.uri, MlflowClient(tracking.uri)
    runs = {"conv1": open_run(tracking, "a"), "conv2": open_run(tracking, "b")}
    recorder = MlflowRecorder(uri, runs)
    with pytest.raises(UnknownPart, match="'conv9'.*'conv1', 'conv2'"):
        write(recorder)
    recorder.end()
    for run_id in runs.values():
        data = client.get_run(run_id).data
        assert "top1" not in data.metrics and "feature_dim" not in data.params and schema.TAG + "note" not in data.tags
        assert "config.json" not in {a.path for a in client.list_artifacts(run_id)}


def test_the_recorder_writes_when_due_and_before_an_artifact(tracking, monkeypatch, tmp_path):
    uri, client = tracking.uri, MlflowClient(tracking.uri)
    run_id = open_run(tracking, "a")
    recorder = MlflowRecorder(uri, {None: run_id})
    recorder.metrics({"loss": 1.0}, 1)
    checkpoint = tmp_path / "resume.pt"
    checkpoint.write_bytes(b"x")
    recorder.artifact(checkpoint)  # the steps before a checkpoint are stored before it
    assert [m.step for m in client.get_metric_history(run_id, "loss")] == [1]
    monkeypatch.setattr("orchestrator.record.recorder.WRITE_EVERY_S", 0.0)
    recorder.metrics({"loss": 0.5}, 2)
    assert [m.step for m in client.get_metric_history(run_id, "loss")] == [1, 2]


def test_a_failed_job_still_writes_its_values_and_is_marked_failed(tracking):
    uri, client = tracking.uri, MlflowClient(tracking.uri)
    run_id = open_run(tracking, "a")
    recorder = MlflowRecorder(uri, {None: run_id})
    recorder.metrics({"loss": 1.0}, 1)
    recorder.end(RuntimeError("boom"))
    run = client.get_run(run_id)
    assert run.info.status == "FAILED" and run.data.metrics["loss"] == 1.0


def test_a_batch_over_mlflow_limits_is_split(tracking):
    uri, client = tracking.uri, MlflowClient(tracking.uri)
    run_id = open_run(tracking, "a")
    recorder = MlflowRecorder(uri, {None: run_id})
    recorder.params({f"p{i}": i for i in range(150)})
    for step in range(300):
        recorder.metrics({"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}, step)
    recorder.end()
    assert len(client.get_metric_history(run_id, "d")) == 300
    assert len(client.get_run(run_id).data.params) == 151  # and the run's own "layer"


def test_a_reopened_run_keeps_its_params(tracking):
    """A retry reopens the run; params that are not part of the key (a renamed image file)
    may differ, and MLflow refuses to change a param: they are written once, at creation."""
    first, _ = runs.start_run(tracking, "pretrain", "k", "k", tracking.sweep_run_id, {"x": 1}, {})
    runs.end_run(tracking.uri, first, RuntimeError("lost"))
    again, attempt = runs.start_run(
        tracking, "pretrain", "k", "k", tracking.sweep_run_id, {"x": 2}, {}
    )
    run = MlflowClient(tracking.uri).get_run(again)
    assert (again, attempt, run.data.params["x"]) == (first, 2, "1")
    assert run.data.tags[schema.KEY] == "k" and run.info.status == "RUNNING"


def test_the_ui_link_opens_the_training_runs_of_the_store_s_own_ui():
    from orchestrator.record.store import ui_link

    assert ui_link("sqlite:////tmp/m.db", "3") == "http://127.0.0.1:5000/#/experiments/3/runs?workflowType=machine_learning"
    assert ui_link("https://me:secret@mlflow.lab:5000/", "3", "ab12") == (
        "https://mlflow.lab:5000/#/experiments/3/runs/ab12?workflowType=machine_learning"  # no password printed
    )


def test_the_git_commit_is_read_from_the_checkout_s_files(tmp_path):
    from orchestrator.record.runs import git_head

    a, b = "a" * 40, "b" * 40
    repo = tmp_path / "repo"
    (repo / ".git" / "refs" / "heads").mkdir(parents=True)
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (repo / ".git" / "refs" / "heads" / "main").write_text(a + "\n")
    assert git_head(repo) == (a, "main")
    (repo / ".git" / "refs" / "heads" / "main").unlink()  # packed by `git gc`
    (repo / ".git" / "packed-refs").write_text(f"# pack-refs with: peeled\n{b} refs/heads/other\n{a} refs/heads/main\n")
    assert git_head(repo) == (a, "main")
    # A linked worktree: .git is a file; its HEAD is its own, refs are the main repository's.
    worktree, own = tmp_path / "wt", repo / ".git" / "worktrees" / "wt"
    own.mkdir(parents=True)
    (worktree).mkdir()
    (worktree / ".git").write_text(f"gitdir: {own}\n")
    (own / "commondir").write_text("../..\n")
    (own / "HEAD").write_text("ref: refs/heads/other\n")
    assert git_head(worktree) == (b, "other")
    (own / "HEAD").write_text(b + "\n")  # detached
    assert git_head(worktree) == (b, None)
    assert git_head(tmp_path) is None  # not a checkout
