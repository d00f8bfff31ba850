"""Building a segment database: corpus → tokens → BPE merges → segments → SQLite.

Two passes over the corpus, both spread over `jobs` worker processes (the corpus order and every
tie-break are fixed, so the file does not depend on scheduling):

1. tokenise every network (canonical order) → one string per network; train BPE on them;
2. re-derive each network, split it with the merges, canonicalise every segment and aggregate
   per segment hash: corpus frequency per family, absolute shapes seen, the first example sources and,
   from the corpus-first occurrence, the weight-free ONNX skeleton, MACs and params.

Segments get ids by decreasing frequency (ties: fewer nodes, then hash). The file is written into a
temporary file beside the target and moved into place at the end.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from autogo_deploy.errors import InputError
from autogo_deploy.segments import corpus as corpus_mod
from autogo_deploy.segments.db import APPLICATION_ID, SCHEMA, SCHEMA_VERSION

DEFAULT_VOCAB_SIZE = 2000
MAX_EXAMPLES = 3
MAX_SHAPES = 16
Progress = Callable[[str, int, int], None]


@dataclass
class BuildResult:
    path: Path
    seconds: float
    networks: dict[str, int]
    segments: int
    tokens: int
    pieces: int
    multi_node_pieces: int
    fallbacks: list[str] = field(default_factory=list)  # items loaded through graph.load
    notes: list[str] = field(default_factory=list)
    phase_seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}


# ------------------------------------------------------------------------------- worker side
_STATE: dict = {}


def _tokenize_chunk(chunk):
    """Pass 1 over a chunk of (index, Item): StructGraph → tokens → compact record."""
    from autogo_deploy.segments.compact import Interner, encode
    from autogo_deploy.segments.tokenize import graph_tokens

    interner = Interner()
    records, fallbacks = [], []
    for idx, item in chunk:
        sg, fell_back = corpus_mod.struct_of(item)
        if fell_back:
            fallbacks.append(item.source)
        records.append(
            encode(sg, graph_tokens(sg), interner, idx=idx, family=item.family, source=item.source)
        )
    return interner.tables(), records, fallbacks


def _state(run: str, merges_json: str):
    """Per-process state of one build run (caches survive across chunks, never across runs)."""
    from autogo_deploy.segments.bpe import Merges

    key = run
    if _STATE.get("key") != key:
        _STATE.clear()
        _STATE.update(key=key, merges=Merges(merges_json), forms={}, sent=set(), descs={})
    return _STATE


def _segment_chunk(args):
    """Pass 2 over a chunk: split with the merges, canonicalise, aggregate per segment hash."""
    from autogo_deploy.segments.canon import segment_form, skeleton
    from autogo_deploy.segments.compact import Net, relative_descriptor

    run, tables, records, chars, merges_json = args
    st = _state(run, merges_json)
    merges, forms, sent, rel_ids = st["merges"], st["forms"], st["sent"], st["descs"]
    rel_key = [rel_ids.setdefault(relative_descriptor(d), len(rel_ids)) for d in tables.descs]
    agg: dict[str, dict] = {}
    payloads: dict[str, tuple] = {}
    piece_counts: Counter = Counter()
    for rec in records:
        net = Net(rec, tables)
        text = "".join(chars[t] for t in net.tokens)
        for gpos, (a, b) in enumerate(merges.encode(text)):
            piece_counts[text[a:b]] += 1
            for group in net.components(a, b) if b - a > 1 else [[a]]:
                key, ext_codes, _exposed = net.prekey(group, rel_key)
                cached = forms.get(key)
                form = mini = None
                if cached is None:
                    mini = net.mini_graph(group)
                    form = segment_form(mini, list(range(len(group))))
                    cached = forms[key] = (form.hash, _ports(form, group, ext_codes))
                digest, (in_ports, out_ports) = cached
                shapes = (
                    tuple(net.ext_shape(group, ext_codes[e]) for e in in_ports),
                    tuple(net.out_shape(group[k], q) for k, q in out_ports),
                )
                entry = agg.get(digest)
                if entry is None:
                    entry = agg[digest] = {"families": Counter(), "shapes": Counter(), "examples": []}
                entry["families"][rec.family] += 1
                entry["shapes"][shapes] += 1
                if len(entry["examples"]) < MAX_EXAMPLES:
                    entry["examples"].append((rec.idx, rec.source, [net.name(i) for i in group]))
                if digest not in sent:
                    sent.add(digest)
                    if form is None:
                        mini = net.mini_graph(group)
                        form = segment_form(mini, list(range(len(group))))
                    payloads[digest] = ((rec.idx, gpos, group[0]), _payload(mini, form, skeleton))
    return agg, payloads, piece_counts


def _ports(form, group: list[int], ext_codes: list[int]) -> tuple[list[int], list[tuple[int, int]]]:
    """The form's port order in prekey terms: ext numbering for inputs, (position, port) for outputs."""
    from autogo_deploy.segments.compact import _PORTS

    code_of = {}
    for e, c in enumerate(ext_codes):
        code_of[f"t{c}" if c >= 0 else f"in{-2 - c}"] = e
    ins = [code_of[t] for t in form.inputs]
    pos = {i: k for k, i in enumerate(group)}
    outs = []
    for t in form.outputs:  # mini-graph output tensors are named t<node * _PORTS + port>
        code = int(t[1:])
        outs.append((pos[code // _PORTS], code % _PORTS))
    return ins, outs


def _payload(sg, form, skeleton_fn) -> dict:
    return {
        "n_nodes": len(form.order),
        "n_inputs": form.n_inputs,
        "n_outputs": form.n_outputs,
        "spatial_ratio": form.spatial_ratio,
        "channel_ratio": form.channel_ratio,
        "ops": " ".join(sg.nodes[i].op_type for i in form.order),
        "rel_inputs": form.rel_inputs,
        "rel_outputs": form.rel_outputs,
        "example_inputs": [list(s) for s in form.abs_inputs],
        "example_outputs": [list(s) for s in form.abs_outputs],
        "macs": form.macs,
        "params": form.params,
        "model": skeleton_fn(sg, form).SerializeToString(deterministic=True),
    }


# ------------------------------------------------------------------------------- driver
def _chunks(items, size: int):
    indexed = list(enumerate(items))
    return [indexed[i : i + size] for i in range(0, len(indexed), size)]


def _run(pool, fn, tasks, progress: Progress | None, stage: str, weights: list[int], on_result=None):
    total, done = sum(weights), 0
    if progress:
        progress(stage, 0, total)
    results = []
    mapper = pool.imap(fn, tasks) if pool is not None else map(fn, tasks)
    for w, res in zip(weights, mapper, strict=True):
        results.append(res)
        if on_result is not None:  # main-process work overlapped with the workers
            on_result(res)
        done += w
        if progress:
            progress(stage, done, total)
    return results


def build(
    path: str | os.PathLike,
    *,
    families=None,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    seed: int = 0,
    jobs: int = 2,
    limit: int | None = None,
    nb101_samples: int = corpus_mod.NB101_SAMPLES,
    progress: Progress | None = None,
    chunk_size: int = 48,
    require_data: bool = True,
) -> BuildResult:
    """Mine the corpus and write the segment database to `path` (atomically)."""
    from autogo_deploy.segments.bpe import Merges, code_point
    from autogo_deploy.segments.segment import Vocabulary

    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 2:
        raise InputError(f"--vocab-size must be an integer >= 2, got {vocab_size!r}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise InputError(f"--jobs must be a positive integer, got {jobs!r}")
    path = Path(path)
    if path.is_dir():
        raise InputError(f"output path {path} is a directory")
    path.parent.mkdir(parents=True, exist_ok=True)
    fams = corpus_mod.parse_families(families)
    t0 = time.perf_counter()
    notes: list[str] = []
    items = corpus_mod.items(
        fams, seed=seed, limit=limit, nb101_samples=nb101_samples, require_data=require_data, notes=notes
    )
    if not items:
        raise InputError("the corpus is empty")
    chunks = _chunks(items, chunk_size)
    weights = [len(c) for c in chunks]
    pool = None
    if jobs > 1:
        import multiprocessing as mp

        pool = mp.get_context("fork").Pool(jobs)  # created before the tokenizer runs in this process
    phases = {"corpus": time.perf_counter() - t0}
    try:
        t = time.perf_counter()
        # While workers tokenise, the main process turns each chunk into strings with provisional
        # characters (first-seen order); once every token is known they are renamed to the sorted
        # vocabulary's characters with str.translate.
        provisional: dict[str, str] = {}
        token_counts: Counter = Counter()
        fallbacks: list[str] = []
        raw_texts: list[str] = []

        def absorb(result) -> None:
            tables, records, fb = result
            fallbacks.extend(fb)
            chars = [provisional.setdefault(tok, code_point(len(provisional))) for tok in tables.tokens]
            for rec in records:
                ids = array("I")
                ids.frombytes(rec.tokens)
                raw_texts.append("".join([chars[i] for i in ids]))
                for i, c in Counter(ids).items():
                    token_counts[tables.tokens[i]] += c

        first = _run(pool, _tokenize_chunk, chunks, progress, "tokenize", weights, on_result=absorb)
        phases["tokenize"] = time.perf_counter() - t
        t = time.perf_counter()
        vocab = Vocabulary(sorted(token_counts))
        table = {ord(provisional[tok]): vocab.char[tok] for tok in vocab.tokens}
        texts = [text.translate(table) for text in raw_texts]
        raw_texts.clear()
        chunk_chars = [[vocab.char[tok] for tok in tables.tokens] for tables, _, _ in first]
        if progress:
            progress("bpe", 0, 1)
        phases["texts"] = time.perf_counter() - t
        t = time.perf_counter()
        merges = Merges.train(texts, alphabet=vocab.alphabet(), vocab_size=vocab_size)
        if progress:
            progress("bpe", 1, 1)
        phases["bpe"] = time.perf_counter() - t
        t = time.perf_counter()
        del texts
        run = f"{os.getpid()}-{time.monotonic_ns()}"
        tasks = [
            (run, tb, recs, chars, merges.json)
            for (tb, recs, _), chars in zip(first, chunk_chars, strict=True)
        ]
        del first
        second = _run(pool, _segment_chunk, tasks, progress, "segment", weights)
        phases["segment"] = time.perf_counter() - t
    finally:
        _STATE.clear()
        if pool is not None:
            pool.close()
            pool.join()
    t = time.perf_counter()
    segments = _merge(second)
    piece_counts: Counter = Counter()
    for _, _, pc in second:
        piece_counts.update(pc)
    networks = dict(Counter(it.family for it in items))
    meta = {
        "app": "autogo-deploy segment database",
        "vocab_size_requested": str(vocab_size),
        "vocab_size": str(len(merges.vocab())),
        "seed": str(seed),
        "families": " ".join(fams),
        "networks": json.dumps(networks, sort_keys=True),
        "limit": "" if limit is None else str(limit),
        "nb101_samples": str(nb101_samples),
        "tokenizer": merges.json,
        "notes": json.dumps(notes),
    }
    n_multi = _write(path, meta, vocab, token_counts, merges, piece_counts, segments, progress)
    phases["write"] = time.perf_counter() - t
    return BuildResult(
        path=path,
        seconds=time.perf_counter() - t0,
        networks=networks,
        segments=len(segments),
        tokens=len(vocab.tokens),
        pieces=len(merges.vocab()),
        multi_node_pieces=n_multi,
        fallbacks=sorted(set(fallbacks)),
        notes=notes,
        phase_seconds={k: round(v, 2) for k, v in phases.items()},
    )


def _merge(results) -> dict[str, dict]:
    segs: dict[str, dict] = {}
    for agg, payloads, _ in results:
        for digest, entry in agg.items():
            cur = segs.get(digest)
            if cur is None:
                segs[digest] = {"families": Counter(entry["families"]), "shapes": Counter(entry["shapes"]),
                                "examples": list(entry["examples"]), "payload": None}  # fmt: skip
            else:
                cur["families"].update(entry["families"])
                cur["shapes"].update(entry["shapes"])
                cur["examples"] = sorted(cur["examples"] + entry["examples"])[:MAX_EXAMPLES]
        for digest, (order_key, payload) in payloads.items():
            cur = segs[digest]
            if cur["payload"] is None or order_key < cur["payload"][0]:
                cur["payload"] = (order_key, payload)
    return segs


def _write(path: Path, meta, vocab, token_counts, merges, piece_counts, segments, progress) -> int:
    from autogo_deploy.segments.tokenize import token_op

    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    for extra in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        extra.unlink(missing_ok=True)
    try:
        con = sqlite3.connect(tmp)
        con.execute("PRAGMA page_size = 4096")
        con.execute("PRAGMA journal_mode = OFF")
        con.execute("PRAGMA synchronous = OFF")
        con.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        con.executescript(SCHEMA)
        con.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
        con.executemany("INSERT INTO meta VALUES (?, ?)", sorted(meta.items()))
        con.executemany(
            "INSERT INTO tokens VALUES (?, ?, ?, ?)",
            [(i, t, token_op(t), token_counts[t]) for i, t in enumerate(vocab.tokens)],
        )
        index_of = {vocab.char[t]: i for i, t in enumerate(vocab.tokens)}
        rows, n_multi = [], 0
        for piece, pid in sorted(merges.vocab().items(), key=lambda kv: kv[1]):
            if piece == "<unk>":
                continue
            ids = [index_of[c] for c in piece]
            n_multi += len(ids) > 1
            rows.append((pid, len(ids), " ".join(map(str, ids)), piece_counts.get(piece, 0)))
        con.executemany("INSERT INTO pieces VALUES (?, ?, ?, ?)", rows)
        ordered = sorted(
            segments.items(),
            key=lambda kv: (-sum(kv[1]["families"].values()), kv[1]["payload"][1]["n_nodes"], kv[0]),
        )
        for sid, (digest, seg) in enumerate(ordered, start=1):
            p = seg["payload"][1]
            count = sum(seg["families"].values())
            con.execute(
                "INSERT INTO segments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (sid, digest, p["n_nodes"], p["n_inputs"], p["n_outputs"], float(p["spatial_ratio"]),
                 str(p["spatial_ratio"]), float(p["channel_ratio"]), str(p["channel_ratio"]), p["ops"],
                 json.dumps(p["rel_inputs"]), json.dumps(p["rel_outputs"]), json.dumps(p["example_inputs"]),
                 json.dumps(p["example_outputs"]), p["macs"], p["params"], count, len(seg["shapes"]),
                 p["model"]),
            )  # fmt: skip
            con.executemany(
                "INSERT INTO segment_families VALUES (?, ?, ?)",
                [(sid, f, c) for f, c in sorted(seg["families"].items())],
            )
            top = sorted(seg["shapes"].items(), key=lambda kv: (-kv[1], repr(kv[0])))[:MAX_SHAPES]
            con.executemany(
                "INSERT INTO segment_shapes VALUES (?, ?, ?, ?, ?)",
                [(sid, r, json.dumps(s[0]), json.dumps(s[1]), c) for r, (s, c) in enumerate(top)],
            )
            con.executemany(
                "INSERT INTO segment_sources VALUES (?, ?, ?, ?)",
                [(sid, r, src, json.dumps(nodes)) for r, (_, src, nodes) in enumerate(seg["examples"])],
            )
        con.commit()
        con.execute("VACUUM")
        con.execute("PRAGMA journal_mode = WAL")
        con.close()
        # side files of readers of a previous file at `path` must not be paired with the new one
        for side in (Path(f"{path}-wal"), Path(f"{path}-shm")):
            side.unlink(missing_ok=True)
        os.replace(tmp, path)
    finally:
        for extra in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            extra.unlink(missing_ok=True)
    return n_multi
