"""Segment database: AutoGO's data-driven mining of computational segments.

    from autogo_deploy.segments import default_db, segment_model
    db = default_db()                          # built on first use into the cache folder
    occ = segment_model(graph, db)             # every node in exactly one Occurrence
    subs = db.replacements(occ[3], limit=20)   # boundary-compatible SegmentRecords
    model = subs[0].model()                    # standalone ONNX model of a replacement

Modules: tokenize (node → token), bpe (merges via HF tokenizers), corpus (what is mined), lite (the
weight-free corpus fast path), canon (segment canonical form and hash), segment (splitting a graph),
compact/build (the two-pass database build), db (SQLite store and queries).
"""

from __future__ import annotations

__all__ = ["Occurrence", "SegmentDB", "SegmentRecord", "Signature", "build", "default_db", "segment_model"]


def __getattr__(name: str):
    if name in ("SegmentDB", "SegmentRecord", "default_db"):
        from autogo_deploy.segments import db

        return getattr(db, name)
    if name in ("Occurrence", "Signature", "segment_model"):
        from autogo_deploy.segments import segment

        return getattr(segment, name)
    if name == "build":
        from autogo_deploy.segments.build import build

        return build
    raise AttributeError(name)
