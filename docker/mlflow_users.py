"""The sweep's MLflow user, made by the tracking server's container at start-up (mlflow-server.sh).

Signed in as the admin (MLFLOW_AUTH_ADMIN_USERNAME / MLFLOW_AUTH_ADMIN_PASSWORD, the password
from its secret), it makes sure that:
  - the user MLFLOW_SWEEP_USERNAME exists, not an admin, with the password in its own secret
    (MLFLOW_SWEEP_PASSWORD, from MLFLOW_SWEEP_PASSWORD_FILE);
  - each experiment in MLFLOW_SWEEP_EXPERIMENTS (comma-separated names) exists, and that user
    has MANAGE on it and on nothing else (basic_auth.ini: default_permission = NO_PERMISSIONS).
Idempotent: every start re-applies it, so a changed secret or a new experiment name takes
effect with `docker compose restart mlflow`.

    python mlflow_users.py http://localhost:5000
"""

from __future__ import annotations

import os
import sys

from mlflow.exceptions import MlflowException
from mlflow.server import get_app_client
from mlflow.tracking import MlflowClient


def main(tracking_uri: str) -> int:
    username = os.environ["MLFLOW_SWEEP_USERNAME"]
    password = os.environ["MLFLOW_SWEEP_PASSWORD"]
    experiments = [n.strip() for n in os.environ.get("MLFLOW_SWEEP_EXPERIMENTS", "").split(",")]
    # The admin signs in from the environment, as any MLflow client does.
    os.environ["MLFLOW_TRACKING_USERNAME"] = os.environ["MLFLOW_AUTH_ADMIN_USERNAME"]
    os.environ["MLFLOW_TRACKING_PASSWORD"] = os.environ["MLFLOW_AUTH_ADMIN_PASSWORD"]
    auth = get_app_client("basic-auth", tracking_uri=tracking_uri)
    try:
        auth.get_user(username)
        auth.update_user_password(username, password)
    except MlflowException:
        auth.create_user(username, password)
    auth.update_user_admin(username, False)
    client = MlflowClient(tracking_uri)
    for name in filter(None, experiments):
        experiment = client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment else client.create_experiment(name)
        grant(auth, username, experiment_id)
        print(f"mlflow_users: {username} may manage experiment {name!r} ({experiment_id})")
    return 0


def grant(auth, username: str, experiment_id: str) -> None:
    """MANAGE on the experiment for the user, whatever it had there before."""
    try:
        auth.grant_user_permission(username, "experiment", experiment_id, "MANAGE")
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        held = auth.get_user_permission(username, "experiment", experiment_id).permission
        if held != "MANAGE":
            auth.revoke_user_permission(username, "experiment", experiment_id)
            auth.grant_user_permission(username, "experiment", experiment_id, "MANAGE")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
