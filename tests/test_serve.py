"""Online: `mlflow models serve -m models:/narcotag-tagger@champion` answers /invocations with the records
the Tagger gives for the same rows."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

pytest.register_assert_rewrite("score_fixtures")

from score_fixtures import MODEL_URI, generic_rows  # noqa: E402

from pipeline.clean import clean_frame  # noqa: E402
from pipeline.tagger import Tagger  # noqa: E402

pytest_plugins = ["score_fixtures"]  # fixtures: tiny_project, registry


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _post(url: str, body: dict, timeout: float = 60) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def _plain(value):
    """JSON round trip: what the server's answer and the Tagger's records look like on the wire."""
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v)))


def test_served_model_answers_with_the_tagger_records(registry, tmp_path):
    mlflow_exe = Path(sys.executable).with_name("mlflow")
    if not mlflow_exe.exists() and not shutil.which("mlflow"):
        pytest.skip("the mlflow command is not installed")
    rows = generic_rows(registry.sample, limit=12)
    rows.append({"id": "empty-1", "title": "", "description": None})  # no text: answered as quarantined
    port = _free_port()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_TRACKING_URI": registry.tracking_uri,
        "MLFLOW_REGISTRY_URI": registry.tracking_uri,
    }
    command = [str(mlflow_exe) if mlflow_exe.exists() else "mlflow", "models", "serve", "-m", MODEL_URI,
               "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "--workers", "1"]  # fmt: skip
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115 - the server writes to it while the test runs
    server = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "server did not come up in 90 s"
            time.sleep(0.3)
        answer = _post(f"http://127.0.0.1:{port}/invocations", {"dataframe_records": rows})
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()

    served = answer["predictions"]
    assert len(served) == len(rows)
    assert served[-1]["id"] == "empty-1" and served[-1]["status"] == "quarantined"

    frame = pd.DataFrame(rows)
    cleaned, rejected = clean_frame(frame)
    models = Path(registry.root / "mlartifacts").rglob("artifacts/models")
    tagger = Tagger.load(next(p for p in models if p.is_dir()))
    expected = {r["id"]: _plain(r) for r in tagger.tag(cleaned)}
    ok = [r for r in served if r["status"] == "ok"]
    assert len(ok) == len(expected) == len(rows) - len(rejected)
    for record in ok:
        want = expected[record["id"]]
        # the pyfunc's answer frame gives ok rows an empty ``reason`` column (NaN on the wire)
        assert record.get("reason") is None or record["reason"] != record["reason"]
        got = {k: v for k, v in record.items() if k not in ("status", "reason")}
        assert got == want, record["id"]
