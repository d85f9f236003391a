"""The contract between the driver and the workers: typed settings, jobs and image checks.

It imports pydantic, PIL and the standard library only, never torch, ray or mlflow, so the
driver plans a sweep without torch and a GPU box runs a job without ray or mlflow. Both sides
import it; neither imports the other.
"""
