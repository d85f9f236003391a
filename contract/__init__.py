"""The contract between the driver and the workers: typed settings, jobs, image checks, the
extension tables and the plugin loader.

It imports pydantic, PIL and the standard library only, never torch, ray or mlflow, so the
driver plans a sweep without torch and a GPU box runs a job without ray or mlflow. Both sides
import it; the workers never import the driver, and the driver imports the workers only inside
the functions that run a job or measure its cost (docs/ARCHITECTURE.md).
"""
