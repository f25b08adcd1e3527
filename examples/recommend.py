"""Propose routings for items of a trainer model with the model files and hnswlib alone.

Usage: python examples/recommend.py MODELS_DIR ITEM_CD [ITEM_CD ...] [--top-k 5]

This is what a Stage-3 service does with a model directory (see docs/stage3.md): load the index
with the real `hnswlib` package, look the item up in items.parquet, search at the model's
ef_search, keep the nearest items that have a routing (never the item itself), read their
routings from routings.parquet, and propose each distinct routing once, the most shared first, then by votes. Prints one JSON object per item, one per line, with the fields of
`trainer recommend --json` that do not need trainer's fitted state (neighbours, similarity,
support, votes, agreement, confidence, tier, routing); a new item's vector comes from `trainer recommend --input` or `trainer vectorize`.
Needs: hnswlib==0.8.0, numpy, pyarrow.
"""
import argparse
import json
import os
import sys

import hnswlib
import numpy as np
import pyarrow.parquet as pq

# Model format versions this client reads (docs/stage3.md): 5 fits the tier's calibration on the
# first proposal as proposal_order makes it; 6 stores each level's confidence as a lower bound of
# its share; 7 changes only the model items' own tier columns, which this client does not read.
# All are applied as stored.
MODEL_FORMAT_VERSIONS = (5, 6, 7)


PROPOSALS = 5


def within_one_op(a, b):
    """Whether JOB_CD sequence b is a or one operation (inserted, dropped or replaced) from it."""
    if len(a) == len(b):
        return sum(1 for x, y in zip(a, b) if x != y) <= 1
    if abs(len(a) - len(b)) != 1:
        return False
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    i = 0
    while i < len(short) and short[i] == long_[i]:
        i += 1
    return short[i:] == long_[i + 1:]


def votes(seqs):
    """Per neighbour (sequences nearest first), its sequence's votes: each neighbour with that
    sequence counts 1 / (1 + rank / PROPOSALS), rank 0 being the nearest."""
    return [sum(1.0 / (1.0 + j / PROPOSALS) for j, t in enumerate(seqs) if t == q) for q in seqs]


def proposal_order(seqs, k):
    """Indices of the proposed neighbours (sequences nearest first): one per distinct sequence, at
    its nearest neighbour. First the sequence most of the first PROPOSALS share (ties: the
    nearest), then the others by their votes, ties nearest first; at most k."""
    top = seqs[:PROPOSALS]
    v = votes(seqs)
    firsts = [i for i, q in enumerate(seqs) if q not in seqs[:i]]
    if not firsts:
        return []
    first = min(firsts, key=lambda i: (-sum(1 for t in top if t == seqs[i]), i))
    rest = sorted((i for i in firsts if i != first), key=lambda i: (-v[i], i))
    return ([first] + rest)[:k]


def agreement(seqs):
    """The first proposal's agreement: of the first PROPOSALS neighbours' sequences, how many
    equal the first proposal's, plus how many are it or one operation from it."""
    if not seqs:
        return 0
    top = seqs[:PROPOSALS]
    first = seqs[proposal_order(seqs, 1)[0]]
    return sum(1 for t in top if t == first) + sum(1 for t in top if within_one_op(first, t))


def proposal_confidence(levels, score):
    """The confidence of an answer whose first proposal has this agreement
    (training_metadata.json feature_weights.proposal_calibration.levels: [agreement, confidence,
    items], agreement ascending): the level at or below it, else the lowest. No levels: None."""
    if not levels:
        return None
    below = [l for l in levels if l[0] <= score]
    return (below[-1] if below else levels[0])[1]


def calibrate(points, s):
    """The calibrated similarity (training_metadata.json feature_weights.calibration.points:
    [similarity, rate, items], similarity ascending): linear between the points, flat beyond.
    No points: the raw cosine."""
    if not points:
        return s
    if s <= points[0][0]:
        return points[0][1]
    if s >= points[-1][0]:
        return points[-1][1]
    for (x0, y0, _), (x1, y1, _) in zip(points, points[1:]):
        if x0 <= s < x1:
            return y0 + (s - x0) / (x1 - x0) * (y1 - y0) if x1 > x0 else y1
    return points[-1][1]


def load(models):
    meta = json.load(open(os.path.join(models, "training_metadata.json")))
    if meta.get("model_format_version") not in MODEL_FORMAT_VERSIONS:
        sys.exit(
            f"{models}: model format {meta.get('model_format_version')}, "
            f"this client reads {' and '.join(map(str, MODEL_FORMAT_VERSIONS))}"
        )
    side = json.load(open(os.path.join(models, "hnsw_index.json")))
    index = hnswlib.Index(space="cosine", dim=side["dim"])
    index.load_index(os.path.join(models, "hnsw_index.bin"), max_elements=0)
    index.set_ef(side["ef_search"])
    items = pq.read_table(os.path.join(models, "items.parquet")).to_pydict()
    routings = {}
    for row in pq.read_table(os.path.join(models, "routings.parquet")).to_pylist():
        routings.setdefault(row["item_key"], []).append(row)
    vectors = np.load(os.path.join(models, "vectors.npy"), mmap_mode="r")
    return meta, side, index, items, routings, vectors


def propose(label, meta, side, index, items, routings, vectors, top_k):
    n = index.get_current_count()
    thr = meta["similarity_threshold"]
    fw = meta.get("feature_weights", {})
    points = fw.get("calibration", {}).get("points", [])
    levels = fw.get("proposal_calibration", {}).get("levels", [])
    want = 4 * max(top_k, 2 * PROPOSALS)  # as trainer's proposal_pool
    k = max(side["ef_search"], want)
    while True:
        labels, dists = index.knn_query(np.asarray(vectors[label:label + 1]), k=min(k, n))
        found = [
            (int(l), 1.0 - float(d))
            for l, d in zip(labels[0], dists[0])
            if l != label and items["has_routing"][l]
        ][:want]
        if len(found) >= want or k >= n:
            break
        index.set_ef(min(4 * k, n))
        k = min(4 * k, n)
    index.set_ef(side["ef_search"])
    ops_of = [sorted(routings[items["item_key"][l]], key=lambda r: (r["proc_seq"], r["rout_no"])) for l, _ in found]
    seqs = [tuple(r["job_cd"] for r in ops) for ops in ops_of]
    top = seqs[:PROPOSALS]
    v = votes(seqs)
    out = []
    for rank, i in enumerate(proposal_order(seqs, top_k), 1):
        (l, sim), ops, seq = found[i], ops_of[i], seqs[i]
        out.append({
            "rank": rank,
            "label": l,
            "item_cd": items["ITEM_CD"][l],
            "similarity": sim,
            "support": max(1, sum(1 for t in top if t == seq)),
            "votes": v[i],
            "routing": {
                "rout_no": ops[0]["rout_no"],
                "operations": [
                    {k: r[k] for k in ("proc_seq", "job_cd", "res_cd", "setup_minutes", "run_minutes",
                                       "std_minutes", "outsourced", "reports", "actual_hours_per_unit")}
                    for r in ops
                ],
            },
        })
    confidence, agree = None, None
    if out:
        agree = agreement(seqs)
        confidence = proposal_confidence(levels, agree)
        if confidence is None:
            confidence = calibrate(points, found[0][1])
    tier = "HIGH" if confidence is not None and confidence >= thr else "LOW"
    return out, agree, confidence, tier


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models")
    ap.add_argument("items", nargs="+")
    ap.add_argument("--top-k", type=int, default=5)
    a = ap.parse_args()
    meta, side, index, items, routings, vectors = load(a.models)
    by_key = {k: i for i, k in enumerate(items["item_key"])}
    for cd in a.items:
        label = by_key.get(" ".join(cd.split()).upper())
        if label is None:
            sys.exit(f"ITEM_CD {cd} is not in the model {a.models}")
        neighbours, agree, confidence, tier = propose(label, meta, side, index, items, routings, vectors, a.top_k)
        print(json.dumps({
            "item_cd": items["ITEM_CD"][label],
            "agreement": agree,
            "confidence": confidence,
            "tier": tier,
            "neighbours": neighbours,
        }))


if __name__ == "__main__":
    main()
