"""Real services for tests: an `mlflow server` process on a loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """`mlflow server` on 127.0.0.1 over a backend store; stop() and start() again keep the
    port and the store, as a restart by an operator would."""

    def __init__(self, backend: str, folder: Path):
        self.backend, self.folder, self.port = backend, folder, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / "mlflow-server.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 180) -> MlflowServer:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        mlflow = Path(sys.executable).parent / "mlflow"
        self.process = subprocess.Popen(
            [mlflow, "server", "--backend-store-uri", self.backend, "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", "1",  # one process: starts fast on a small machine
             "--artifacts-destination", (self.folder / "artifacts").as_uri(), "--serve-artifacts"],
            env=env, stdout=self.log.open("a"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-2000:]
            try:
                if requests.get(self.url + "/health", timeout=2).ok:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"mlflow server did not answer on {self.url}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
