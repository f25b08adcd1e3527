"""Serves models/tb_projector with real TensorBoard (127.0.0.1 only) and checks what it serves.

Usage: python check_projector.py PROJECTOR_DIR
Prints one JSON object with what the projector plugin reported; exits non-zero on any mismatch.
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np

d = os.path.abspath(sys.argv[1])
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
base = f"http://127.0.0.1:{port}"
tb = os.path.join(os.path.dirname(sys.executable), "tensorboard")
log = tempfile.TemporaryFile()
proc = subprocess.Popen(
    [tb, "--logdir", d, "--host", "127.0.0.1", "--port", str(port), "--load_fast=false"],
    stdout=log, stderr=log,
)


def get(path, timeout=5):
    with urllib.request.urlopen(base + path, timeout=timeout) as r:
        return r.read()


try:
    deadline = time.time() + 90
    enabled = False
    while time.time() < deadline:
        try:
            listing = json.loads(get("/data/plugins_listing"))
            if listing.get("projector", {}).get("enabled"):
                enabled = True
                break
        except Exception:
            pass
        time.sleep(0.5)
    if not enabled:
        log.seek(0)
        sys.exit("projector plugin never became enabled:\n" + log.read().decode(errors="replace")[-3000:])
    runs = json.loads(get("/data/plugin/projector/runs"))
    assert "." in runs, runs
    info = json.loads(get("/data/plugin/projector/info?run=."))
    emb = [e for e in info["embeddings"] if e["tensorName"] == "routing_candidates"]
    assert emb, info
    shape = [int(x) for x in emb[0]["tensorShape"]]
    tensor = np.frombuffer(get("/data/plugin/projector/tensor?run=.&name=routing_candidates", 30), dtype="<f4")
    # The tensor file is raw float32 (vectors.bytes, shape in the config); a tensor whose raw
    # bytes would read as text is written as vectors.tsv instead.
    tensor_path = emb[0]["tensorPath"]
    if tensor_path == "vectors.bytes":
        expected = np.fromfile(os.path.join(d, tensor_path), dtype="<f4").astype(np.float64)
        expected = expected.reshape(shape)
    else:
        expected = np.loadtxt(os.path.join(d, tensor_path), delimiter="\t", dtype=np.float64, ndmin=2)
    assert shape == list(expected.shape), (shape, expected.shape)
    served = tensor.reshape(shape)
    max_diff = float(np.max(np.abs(served - expected)))
    vectors_npy = os.path.join(os.path.dirname(d), "vectors.npy")
    if os.path.exists(vectors_npy):
        assert np.array_equal(served, np.load(vectors_npy)), "served tensor differs from vectors.npy"
    meta = get("/data/plugin/projector/metadata?run=.&name=routing_candidates", 30).decode("utf-8")
    lines = [l for l in meta.split("\n") if l.strip()]
    header = lines[0].split("\t")
    rows = [l.split("\t") for l in lines[1:]]
    print(json.dumps({
        "runs": runs,
        "tensor_path": tensor_path,
        "tensor_shape": shape,
        "tensor_max_abs_diff": max_diff,
        "metadata_header": header,
        "metadata_rows": len(rows),
        "first_item": rows[0][0] if rows else None,
        "first_part_nm": rows[0][1] if rows else None,
    }, ensure_ascii=False))
finally:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
