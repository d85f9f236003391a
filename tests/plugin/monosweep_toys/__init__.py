"""Toys that extend monosweep from a package of their own: a method (toy_settings.py, the
driver's side; toy_method.py, the worker's), an evaluation kind (toy_evaluation.py, the
driver's side; toy_worker.py, the worker's) and an augmentation op (toy_op.py, the driver's
side; toy_op_render.py, the worker's). pyproject.toml names the driver sides under monosweep's
entry-point groups; each registers itself when imported."""
