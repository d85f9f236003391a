"""The driver side: spec, grid and keys (pure), the Ray driver, the MLflow record, the CLI.

Planning a sweep imports neither torch nor ray nor mlflow; those load only where used.
"""
