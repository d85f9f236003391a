"""The one layer that talks to MLflow, the sweep's system of record; a module per concern.

Hierarchy (through `mlflow.parentRunId`): sweep run -> pretrain runs -> cell runs, one per
cell, of kind `probe` whatever their evaluation (linear probe, finetuning, style transfer: the
`evaluation` param says; the kind's name predates the axis and stays, so stores recorded
before count their runs). Keys, kind and attempt are tags; a job that ran before and did not
finish reopens its run (attempt + 1) rather than adding a second one.

- `schema`: the tag names, the run as plain data (`RunView`) and the store's URI resolved
  (`resolve_uri`); imports no MLflow, so pure modules and planning can read it.
- `store`: whether the store is there (reachability, how its URI is shown), the client, the retry policy every call
  goes through (a busy SQLite file or a blinking server costs a wait, not a result), search,
  batched writes, artifacts.
- `queries`: what is recorded, read back: finished keys (one SELECT on a SQL store), each
  key's latest run, the sweep run.
- `runs`: the run lifecycle: the sweep's experiment and run, a job's or cell's run opened
  and closed, the driver's heartbeat, runs left RUNNING marked KILLED.
- `recorder`: `MlflowRecorder`, the worker's sink, buffering a run's values between writes.

Only these modules import mlflow; this file imports none of them.
"""
