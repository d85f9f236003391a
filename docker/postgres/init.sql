-- Run once, when the PostgreSQL volume is first initialised: the basic-auth app keeps its
-- users and permissions in a database of its own, beside the tracking store (`mlflow`).
CREATE DATABASE mlflow_auth;
