"""SQLite segment store: schema, writer, reader and the replacement query.

File layout (schema version 1, see SCHEMA): `schema_version`, `meta` (build parameters, corpus
counts, the BPE model as tokenizer JSON), `tokens` (the node-token vocabulary), `pieces` (the BPE
vocabulary), `segments` (one row per distinct segment, with its weight-free ONNX skeleton) and the
per-segment `segment_families`, `segment_shapes` and `segment_sources` tables. The index
`segments_by_boundary (n_inputs, n_outputs, spatial_ratio, channel_ratio)` serves "segments that can
replace this one". The file is in WAL mode (concurrent readers are fine); readers open it read-only.

Writers build into a temporary file beside the target and `os.replace` it at the end, so a reader
never sees a half-written database. Open errors (missing, corrupt, foreign, other schema) raise
DatabaseError (exit 2).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import onnx

from autogo_deploy.errors import DatabaseError, InputError
from autogo_deploy.segments.segment import Signature

SCHEMA_VERSION = 1
APPLICATION_ID = 0x41474F53  # "AGOS": autogo-deploy segments
_SQLITE_MAGIC = b"SQLite format 3\x00"
_RATIO_EPS = 1e-9

SCHEMA = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE tokens (id INTEGER PRIMARY KEY, token TEXT NOT NULL UNIQUE, op_type TEXT NOT NULL,
                     count INTEGER NOT NULL);
CREATE TABLE pieces (id INTEGER PRIMARY KEY, n_tokens INTEGER NOT NULL, tokens TEXT NOT NULL,
                     count INTEGER NOT NULL);
CREATE TABLE segments (
    id INTEGER PRIMARY KEY, hash TEXT NOT NULL UNIQUE, n_nodes INTEGER NOT NULL,
    n_inputs INTEGER NOT NULL, n_outputs INTEGER NOT NULL,
    spatial_ratio REAL NOT NULL, spatial_ratio_text TEXT NOT NULL,
    channel_ratio REAL NOT NULL, channel_ratio_text TEXT NOT NULL,
    ops TEXT NOT NULL, rel_inputs TEXT NOT NULL, rel_outputs TEXT NOT NULL,
    example_inputs TEXT NOT NULL, example_outputs TEXT NOT NULL,
    macs INTEGER NOT NULL, params INTEGER NOT NULL, count INTEGER NOT NULL, n_shapes INTEGER NOT NULL,
    model BLOB NOT NULL);
CREATE INDEX segments_by_boundary ON segments (n_inputs, n_outputs, spatial_ratio, channel_ratio,
                                           count DESC, id);
CREATE TABLE segment_families (segment_id INTEGER NOT NULL, family TEXT NOT NULL, count INTEGER NOT NULL,
                               PRIMARY KEY (segment_id, family)) WITHOUT ROWID;
CREATE TABLE segment_shapes (segment_id INTEGER NOT NULL, rank INTEGER NOT NULL, inputs TEXT NOT NULL,
                             outputs TEXT NOT NULL, count INTEGER NOT NULL,
                             PRIMARY KEY (segment_id, rank)) WITHOUT ROWID;
CREATE TABLE segment_sources (segment_id INTEGER NOT NULL, rank INTEGER NOT NULL, source TEXT NOT NULL,
                              nodes TEXT NOT NULL, PRIMARY KEY (segment_id, rank)) WITHOUT ROWID;
"""

_SEGMENT_COLUMNS = (
    "id, hash, n_nodes, n_inputs, n_outputs, spatial_ratio_text, channel_ratio_text, ops, rel_inputs, "
    "rel_outputs, example_inputs, example_outputs, macs, params, count, n_shapes"
)


@dataclass
class SegmentRecord:
    """One stored segment. `model()` gives it as a standalone ONNX model with seeded weights."""

    id: int
    hash: str
    n_nodes: int
    n_inputs: int
    n_outputs: int
    spatial_ratio: Fraction
    channel_ratio: Fraction
    ops: list[str]
    rel_inputs: list[str]
    rel_outputs: list[str]
    example_inputs: list[list[int]]
    example_outputs: list[list[int]]
    macs: int  # at the example shapes
    params: int
    count: int  # occurrences in the corpus
    n_shapes: int  # distinct absolute boundary shapes seen
    families: dict[str, int] = field(default_factory=dict)
    shapes: list[dict] = field(default_factory=list)
    sources: list[dict] = field(default_factory=list)
    _db: SegmentDB | None = field(default=None, repr=False, compare=False)

    @property
    def signature(self) -> Signature:
        return Signature(self.n_inputs, self.n_outputs, self.spatial_ratio, self.channel_ratio)

    def skeleton(self) -> onnx.ModelProto:
        """The stored weight-free model (weights have dims but no values)."""
        if self._db is None:
            raise DatabaseError("segment record is detached from its database")
        return self._db._skeleton(self.id)

    def model(self, seed: int = 0, *, params: bool = True) -> onnx.ModelProto:
        """Standalone ONNX model at the example shapes; weights drawn from (seed, segment hash).
        params=False: the weighted ops' parameters keep their dims but get no values (what a
        mutation needs: it draws or inherits all of them, so a segment cut from VGG-16's classifier
        costs no 103 M random weights; see fill_weights)."""
        return fill_weights(self.skeleton(), seed=seed, salt=self.hash, params=params)

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "hash": self.hash,
            "n_nodes": self.n_nodes,
            "n_inputs": self.n_inputs,
            "n_outputs": self.n_outputs,
            "spatial_ratio": str(self.spatial_ratio),
            "channel_ratio": str(self.channel_ratio),
            "ops": self.ops,
            "rel_inputs": self.rel_inputs,
            "rel_outputs": self.rel_outputs,
            "example_inputs": self.example_inputs,
            "example_outputs": self.example_outputs,
            "macs": self.macs,
            "params": self.params,
            "count": self.count,
            "n_shapes": self.n_shapes,
            "families": self.families,
            "shapes": self.shapes,
            "sources": self.sources,
        }


def fill_weights(
    skeleton: onnx.ModelProto, *, seed: int = 0, salt: str = "", params: bool = True
) -> onnx.ModelProto:
    """Give every value-less initializer deterministic values: BatchNorm scale/var 1 and bias/mean 0,
    Mul/Div operands 1, other rank-1 tensors 0, weights He-normal (std sqrt(2 / fan_in)).
    params=False leaves the parameters of weighted ops (resolve_ops.PARAM_OPS, every input after
    the first, where all of a tensor's users are such) without values; the other constants
    (shapes, axes, pads, broadcast operands) are filled as always."""
    import hashlib

    from onnx import numpy_helper

    from autogo_deploy.resolve_ops import PARAM_OPS, has_values

    model = onnx.ModelProto()
    model.CopyFrom(skeleton)
    users: dict[str, tuple[str, int]] = {}
    param_only: dict[str, bool] = {}
    for node in model.graph.node:
        for p, t in enumerate(node.input):
            users.setdefault(t, (node.op_type, p))
            param_only[t] = param_only.get(t, True) and node.op_type in PARAM_OPS and p >= 1
    digest = hashlib.blake2b(f"{seed}:{salt}".encode(), digest_size=8).digest()
    rng = np.random.default_rng(int.from_bytes(digest, "little"))
    for k, tensor in enumerate(model.graph.initializer):
        if has_values(tensor):
            continue
        if not params and param_only.get(tensor.name):
            continue
        dims = tuple(tensor.dims)
        op, port = users.get(tensor.name, ("", 0))
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
        if op == "BatchNormalization":
            arr = np.full(dims, 1.0 if port in (1, 4) else 0.0)
        elif op in ("Mul", "Div"):
            arr = np.ones(dims)
        elif len(dims) <= 1:
            arr = np.zeros(dims)
        else:
            fan_in = int(np.prod(dims[1:])) or 1
            arr = rng.standard_normal(dims) * np.sqrt(2.0 / fan_in)
        model.graph.initializer[k].CopyFrom(numpy_helper.from_array(arr.astype(dtype), tensor.name))
    return model


def _ratio(value) -> Fraction:
    return value if isinstance(value, Fraction) else Fraction(str(value)).limit_denominator(1 << 20)


def _connect_ro(path: Path) -> sqlite3.Connection:
    """Read-only connection; in a folder where WAL's shared-memory file cannot be created, fall back
    to immutable mode (safe: a database file is only ever replaced, never modified in place)."""
    from urllib.parse import quote

    uri = f"file:{quote(str(path.resolve()))}"
    con = sqlite3.connect(f"{uri}?mode=ro", uri=True, check_same_thread=False)
    try:
        con.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        return con
    except sqlite3.OperationalError:
        con.close()
        return sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, check_same_thread=False)


class SegmentDB:
    """Read-only access to a segment database file (open one per thread or process; many may read at once)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise DatabaseError(
                f"segment database not found: {self.path}", hint="build one with `autogo-deploy db build`"
            )
        with open(self.path, "rb") as fh:
            head = fh.read(len(_SQLITE_MAGIC))
        if head != _SQLITE_MAGIC:
            raise DatabaseError(f"{self.path} is not a SQLite database (corrupt or foreign file)")
        try:
            self._con = _connect_ro(self.path)
            app = self._con.execute("PRAGMA application_id").fetchone()[0]
            if app != APPLICATION_ID:
                raise DatabaseError(f"{self.path} is a SQLite file but not an autogo-deploy segment database")
            row = self._con.execute("SELECT version FROM schema_version").fetchone()
        except sqlite3.DatabaseError as exc:
            raise DatabaseError(f"{self.path} is corrupt or unreadable: {exc}") from None
        if row is None or row[0] != SCHEMA_VERSION:
            found = None if row is None else row[0]
            raise DatabaseError(
                f"{self.path} has segment schema version {found}, this tool reads version {SCHEMA_VERSION}",
                hint="rebuild it with `autogo-deploy db build`",
            )
        self._vocab = None
        self._merges = None
        self._ids_by_hash: dict[str, int] | None = None

    # ---------------------------------------------------------------- plumbing
    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        try:
            return self._con.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as exc:
            raise DatabaseError(f"{self.path} is corrupt or unreadable: {exc}") from None

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> SegmentDB:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def meta(self) -> dict[str, str]:
        return {k: v for k, v in self._query("SELECT key, value FROM meta ORDER BY key") if k != "tokenizer"}

    def check(self) -> str:
        """SQLite's integrity check ('ok' or the first problem)."""
        return str(self._query("PRAGMA integrity_check")[0][0])

    # ---------------------------------------------------------------- tokenizer
    def vocabulary(self):
        from autogo_deploy.segments.segment import Vocabulary

        if self._vocab is None:
            self._vocab = Vocabulary([t for (t,) in self._query("SELECT token FROM tokens ORDER BY id")])
        return self._vocab

    def merges(self):
        from autogo_deploy.segments.bpe import Merges

        if self._merges is None:
            row = self._query("SELECT value FROM meta WHERE key = 'tokenizer'")
            if not row:
                raise DatabaseError(f"{self.path} has no BPE model (incomplete database)")
            self._merges = Merges(row[0][0])
        return self._merges

    def ids_by_hash(self) -> dict[str, int]:
        if self._ids_by_hash is None:
            self._ids_by_hash = {h: i for i, h in self._query("SELECT id, hash FROM segments")}
        return self._ids_by_hash

    # ---------------------------------------------------------------- segments
    def _record(self, row: tuple, details: bool) -> SegmentRecord:
        (sid, h, n_nodes, n_in, n_out, sr, cr, ops, rin, rout, ein, eout, macs, params, count, n_shapes) = row
        rec = SegmentRecord(
            sid, h, n_nodes, n_in, n_out, Fraction(sr), Fraction(cr), ops.split(), json.loads(rin),
            json.loads(rout), json.loads(ein), json.loads(eout), macs, params, count, n_shapes, _db=self,
        )  # fmt: skip
        if details:
            rec.families = dict(
                self._query(
                    "SELECT family, count FROM segment_families WHERE segment_id = ? ORDER BY family", (sid,)
                )
            )
            rec.shapes = [
                {"inputs": json.loads(i), "outputs": json.loads(o), "count": c}
                for i, o, c in self._query(
                    "SELECT inputs, outputs, count FROM segment_shapes WHERE segment_id = ? ORDER BY rank",
                    (sid,),
                )
            ]
            rec.sources = [
                {"source": s, "nodes": json.loads(n)}
                for s, n in self._query(
                    "SELECT source, nodes FROM segment_sources WHERE segment_id = ? ORDER BY rank", (sid,)
                )
            ]
        return rec

    def get(self, segment_id: int, *, details: bool = True) -> SegmentRecord:
        rows = self._query(f"SELECT {_SEGMENT_COLUMNS} FROM segments WHERE id = ?", (int(segment_id),))
        if not rows:
            n = self._query("SELECT COUNT(*) FROM segments")[0][0]
            raise InputError(f"no segment with id {segment_id}", hint=f"ids run from 1 to {n}")
        return self._record(rows[0], details)

    def by_hash(self, digest: str) -> SegmentRecord | None:
        rows = self._query(f"SELECT {_SEGMENT_COLUMNS} FROM segments WHERE hash = ?", (digest,))
        return self._record(rows[0], True) if rows else None

    def _skeleton(self, segment_id: int) -> onnx.ModelProto:
        rows = self._query("SELECT model FROM segments WHERE id = ?", (segment_id,))
        if not rows:
            raise InputError(f"no segment with id {segment_id}")
        model = onnx.ModelProto()
        try:
            model.ParseFromString(rows[0][0])
        except Exception as exc:
            raise DatabaseError(f"segment {segment_id} has a corrupt model blob: {exc}") from None
        return model

    def iter_segments(self) -> Iterator[SegmentRecord]:
        for row in self._query(f"SELECT {_SEGMENT_COLUMNS} FROM segments ORDER BY id"):
            yield self._record(row, False)

    def replacements(
        self,
        segment_or_signature,
        *,
        limit: int = 50,
        channel_ratio_range: tuple[float, float] | None = None,
        exclude_self: bool = True,
    ) -> list[SegmentRecord]:
        """Segments with the same arity and spatial ratio, channel ratio in range (exactly equal when
        no range is given); most frequent first. Accepts a SegmentRecord, an Occurrence, a Signature
        or a segment id."""
        target = segment_or_signature
        own_hash = getattr(target, "hash", None)
        if isinstance(target, int):
            rec = self.get(target, details=False)
            own_hash, target = rec.hash, rec.signature
        sig = target if isinstance(target, Signature) else getattr(target, "signature", None)
        if not isinstance(sig, Signature):
            raise InputError(
                "replacements() takes a SegmentRecord, an Occurrence, a Signature or a segment id"
            )
        sr = float(_ratio(sig.spatial_ratio))
        if limit < 1:
            return []
        own = own_hash if (exclude_self and own_hash) else ""
        if channel_ratio_range is None:  # exact: the index yields rows already in frequency order
            rows = self._query(
                f"SELECT {_SEGMENT_COLUMNS} FROM segments WHERE n_inputs = ? AND n_outputs = ? "
                "AND spatial_ratio = ? AND channel_ratio = ? AND hash != ? ORDER BY count DESC, id LIMIT ?",
                (sig.n_inputs, sig.n_outputs, sr, float(_ratio(sig.channel_ratio)), own, int(limit)),
            )
        else:
            lo, hi = (float(v) for v in channel_ratio_range)
            if lo > hi:
                raise InputError(f"channel_ratio_range lower bound {lo} exceeds upper bound {hi}")
            rows = self._query(
                f"SELECT {_SEGMENT_COLUMNS} FROM segments WHERE n_inputs = ? AND n_outputs = ? "
                "AND spatial_ratio = ? AND channel_ratio BETWEEN ? AND ? AND hash != ? "
                "ORDER BY count DESC, id LIMIT ?",
                (sig.n_inputs, sig.n_outputs, sr, lo - _RATIO_EPS, hi + _RATIO_EPS, own, int(limit)),
            )
        return [self._record(r, False) for r in rows]

    def stats(self) -> dict:
        meta = self.meta()
        q = self._query
        by_size = q("SELECT n_nodes, COUNT(*), SUM(count) FROM segments GROUP BY n_nodes ORDER BY n_nodes")
        by_family = q(
            "SELECT family, COUNT(*), SUM(count) FROM segment_families GROUP BY family ORDER BY family"
        )
        pieces = q("SELECT COUNT(*), SUM(n_tokens > 1) FROM pieces")[0]
        return {
            "path": str(self.path),
            "schema_version": SCHEMA_VERSION,
            "segments": q("SELECT COUNT(*) FROM segments")[0][0],
            "tokens": q("SELECT COUNT(*) FROM tokens")[0][0],
            "pieces": pieces[0],
            "multi_node_pieces": pieces[1] or 0,
            "by_size": [{"nodes": n, "segments": c, "occurrences": o} for n, c, o in by_size],
            "by_family": [{"family": f, "segments": c, "occurrences": o} for f, c, o in by_family],
            "meta": meta,
        }


def default_path() -> Path:
    """Where the default database lives: <cache_dir>/segments-v<schema>.db."""
    from autogo_deploy.paths import cache_dir

    return cache_dir() / f"segments-v{SCHEMA_VERSION}.db"


def default_db(*, progress: bool = True, jobs: int | None = None) -> SegmentDB:
    """The default database (full corpus, default vocabulary), built on first use and then reused.

    A cached file that is corrupt or of another schema version is rebuilt (with a note on stderr)."""
    import sys

    path = default_path()
    if path.exists():
        try:
            return SegmentDB(path)
        except DatabaseError as exc:
            print(f"note: rebuilding the default segment database ({exc.one_line()})", file=sys.stderr)
    from autogo_deploy.segments.build import build
    from autogo_deploy.segments.progress import stderr_progress

    jobs = jobs or max(1, min(2, os.cpu_count() or 1))
    if progress:
        with stderr_progress("default segment database") as cb:
            result = build(path, jobs=jobs, progress=cb, require_data=False)
    else:
        result = build(path, jobs=jobs, require_data=False)
    for note in result.notes:
        print(f"note: default segment database: {note}", file=sys.stderr)
    return SegmentDB(path)
