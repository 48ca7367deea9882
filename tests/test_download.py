"""`admpo data download` against an HTTP server the test runs on 127.0.0.1 (Range requests, as the
benchmarks' servers): fetch, resume, refuse a corrupted file, fail clearly offline."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from admpo_cli.cli import app

runner = CliRunner()


class _Files(BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    ranges: list[str] = []

    def do_GET(self):  # noqa: N802
        body = self.files.get(self.path.lstrip("/"))
        if body is None:
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        if rng:
            self.ranges.append(rng)
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(body):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def server(hopper_file):
    """Serves a real D4RL-layout file as hopper_medium-v2.hdf5 and garbage as walker2d_medium-v2.hdf5."""
    _Files.files = {"hopper_medium-v2.hdf5": hopper_file.read_bytes(),
                    "walker2d_medium-v2.hdf5": b"\x89HDF\r\n" + bytes(range(256)) * 40}
    _Files.ranges = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_download_fetches_resumes_and_the_loader_finds_the_file(server, tmp_path, hopper_file, monkeypatch):
    d = tmp_path / "d4rl"
    r = runner.invoke(app, ["data", "download", "hopper-medium-v2", "--dir", str(d), "--base-url", server, "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)  # one JSON object, nothing else on stdout
    assert out["downloaded"][0]["id"] == "hopper-medium-v2"
    assert (d / "hopper_medium-v2.hdf5").read_bytes() == hopper_file.read_bytes()
    assert not list(d.glob("*.part")) and not _Files.ranges
    # the loaders find it where it was put (the default --dir is $D4RL_DATASET_DIR)
    monkeypatch.setenv("D4RL_DATASET_DIR", str(d))
    r = runner.invoke(app, ["data", "info", "hopper-medium-v2"])
    assert r.exit_code == 0, r.output
    # a partial download resumes from where it stopped (a Range request), to the same bytes
    (d / "hopper_medium-v2.hdf5").unlink()
    half = len(hopper_file.read_bytes()) // 2
    (d / "hopper_medium-v2.hdf5.part").write_bytes(hopper_file.read_bytes()[:half])
    r = runner.invoke(app, ["data", "download", "hopper-medium-v2", "--dir", str(d), "--base-url", server])
    assert r.exit_code == 0, r.output
    assert _Files.ranges == [f"bytes={half}-"]
    assert (d / "hopper_medium-v2.hdf5").read_bytes() == hopper_file.read_bytes()


def test_download_refuses_a_corrupted_file_and_fails_clearly_offline(server, tmp_path):
    d = tmp_path / "d4rl"
    r = runner.invoke(app, ["data", "download", "walker2d-medium-v2", "--dir", str(d), "--base-url", server])
    assert r.exit_code == 2 and "not valid" in r.output and "Traceback" not in r.output, r.output
    assert not list(d.iterdir())  # neither the file nor its .part
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/"
    r = runner.invoke(app, ["data", "download", "hopper-medium-v2", "--dir", str(d), "--base-url", dead])
    assert r.exit_code == 2 and "cannot reach" in r.output, r.output
    r = runner.invoke(app, ["data", "download", "hopper-medium-v9"])
    assert r.exit_code == 2 and "unknown dataset" in r.output


def test_training_on_a_missing_d4rl_file_names_the_download_command(tmp_path):
    r = runner.invoke(app, ["train-off", "--preset", "hopper-medium", "--set", f"data.data_dir={tmp_path / 'none'}"])
    assert r.exit_code == 2 and "admpo data download hopper-medium-v2" in r.output, r.output
