"""Loads models/hnsw_index.bin with the real hnswlib package and checks it against trainer.

Usage: python check_hnswlib.py MODELS_DIR
Prints one JSON object: self-hit@1, recall@10 against brute force, agreement of the nearest other
item with items.parquet, and whether hnswlib's save_index reproduces the file byte for byte.
Exits non-zero with a message when a check cannot be made.
"""
import json
import os
import sys
import tempfile

import hnswlib
import numpy as np
import pyarrow.parquet as pq

models = sys.argv[1]
side = json.load(open(os.path.join(models, "hnsw_index.json")))
dim, n = side["dim"], side["N"]
vecs = np.load(os.path.join(models, "vectors.npy"))
assert vecs.shape == (n, dim), (vecs.shape, n, dim)

p = hnswlib.Index(space="cosine", dim=dim)
p.load_index(os.path.join(models, "hnsw_index.bin"), max_elements=0)
p.set_ef(side["ef_search"])
assert p.get_current_count() == n

# Self-hit@1: every stored vector finds itself (or an identical duplicate).
labels, dists = p.knn_query(vecs, k=min(10, n))
self_hit = float(np.mean([(labels[i, 0] == i) or dists[i, 0] < 1e-6 for i in range(n)]))

# Recall@10 against brute force (cosine on unit vectors).
sims = vecs @ vecs.T
k = min(10, n)
exact = np.argsort(-sims, axis=1, kind="stable")[:, :k]
recall = float(np.mean([len(set(labels[i]) & set(exact[i])) / k for i in range(n)]))

# Nearest other item: hnswlib vs trainer's items.parquet.
items = pq.read_table(os.path.join(models, "items.parquet")).to_pydict()
l2, d2 = p.knn_query(vecs, k=2)
agree = 0
sim_err = 0.0
for i in range(n):
    other = l2[i, 1] if l2[i, 0] == i else l2[i, 0]
    od = d2[i, 1] if l2[i, 0] == i else d2[i, 0]
    if items["nearest_other_label"][i] == other:
        agree += 1
    sim_err = max(sim_err, abs((1 - od) - items["nearest_other_similarity"][i]))

# Re-save: hnswlib's own save_index must reproduce our file byte for byte (unused slots are zero
# in our file; hnswlib keeps whatever is there, which is our zeros).
with tempfile.TemporaryDirectory() as t:
    out = os.path.join(t, "resaved.bin")
    p.save_index(out)
    same = open(out, "rb").read() == open(os.path.join(models, "hnsw_index.bin"), "rb").read()

print(json.dumps({
    "n": n,
    "dim": dim,
    "self_hit_at_1": self_hit,
    "recall_at_10": recall,
    "nearest_other_agreement": agree / n,
    "nearest_other_similarity_max_abs_diff": float(sim_err),
    "resave_identical": same,
}))
