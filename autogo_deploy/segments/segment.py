"""Segmenting a graph with the learned merges: tokens → BPE pieces → connected node sets.

A BPE piece is a run of consecutive nodes in canonical order. Such a run is convex (a path between two
of its nodes cannot leave it, since every node on the path sits between them in topological order),
but it need not be connected: two branches reading the same tensor are neighbours in the order. A
piece is therefore split into its connected components, where two nodes of the piece are linked when
one consumes a tensor the other produces, or when both read the same activation tensor (siblings of a
fork stay together, e.g. the three branches of an NB201 cell input). Components keep convexity, so
every segment can be cut out and replaced without creating a cycle, and every node lands in exactly
one segment.

Unseen tokens: a token absent from the database vocabulary becomes `<unk:OP>`; it cannot take part
in a merge, so its node becomes a one-node segment, and the occurrence lists it in `unknown`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from autogo_deploy.segments.bpe import Merges, code_point
from autogo_deploy.segments.canon import SegmentForm, segment_form
from autogo_deploy.segments.structure import StructGraph
from autogo_deploy.segments.tokenize import graph_tokens, token_op, unk_token


@dataclass(frozen=True)
class Signature:
    """Boundary signature used to find replacements: arity and shape ratios of port 0."""

    n_inputs: int
    n_outputs: int
    spatial_ratio: Fraction
    channel_ratio: Fraction

    def __str__(self) -> str:
        return (
            f"{self.n_inputs}->{self.n_outputs} spatial x{self.spatial_ratio} channels x{self.channel_ratio}"
        )


@dataclass
class Occurrence:
    """One segment of a segmented graph."""

    segment_id: int | None  # None: a structure the database has never seen
    hash: str
    node_names: tuple[str, ...]  # canonical order inside the segment
    inputs: tuple[str, ...]  # boundary tensors in port order (bind a replacement's inputs to these)
    outputs: tuple[str, ...]
    signature: Signature
    macs: int = 0
    params: int = 0
    unknown: tuple[str, ...] = field(default_factory=tuple)  # unseen tokens (as <unk:OP>)

    def to_dict(self) -> dict:
        return {
            "segment_id": self.segment_id,
            "hash": self.hash,
            "nodes": list(self.node_names),
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "signature": {
                "n_inputs": self.signature.n_inputs,
                "n_outputs": self.signature.n_outputs,
                "spatial_ratio": str(self.signature.spatial_ratio),
                "channel_ratio": str(self.signature.channel_ratio),
            },
            "macs": self.macs,
            "params": self.params,
            "unknown": list(self.unknown),
        }


class Vocabulary:
    """Node token ↔ character mapping; tokens sorted, so the same corpus gives the same mapping."""

    def __init__(self, tokens: list[str]):
        self.tokens = list(tokens)
        self.char = {t: code_point(i) for i, t in enumerate(self.tokens)}
        self.unk_char = code_point(len(self.tokens))  # outside the BPE alphabet: never merged

    def alphabet(self) -> list[str]:
        return [self.char[t] for t in self.tokens]

    def encode(self, tokens: list[str]) -> tuple[str, dict[int, str]]:
        """The character string of a token sequence and {position: <unk:OP>} for unseen tokens."""
        chars = []
        unknown: dict[int, str] = {}
        for i, t in enumerate(tokens):
            c = self.char.get(t)
            if c is None:
                unknown[i] = unk_token(token_op(t))
                c = self.unk_char
            chars.append(c)
        return "".join(chars), unknown


def components(sg: StructGraph, start: int, end: int) -> list[list[int]]:
    """Connected components of nodes start..end-1 (producer/consumer or shared-input links)."""
    parent = list(range(start, end))

    def find(i: int) -> int:
        while parent[i - start] != i:
            parent[i - start] = parent[parent[i - start] - start]
            i = parent[i - start]
        return i

    def union(a: int, b: int) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb) - start] = min(ra, rb)

    first_reader: dict[str, int] = {}
    for i in range(start, end):
        for t in sg.nodes[i].inputs:
            if not t or t in sg.consts:
                continue
            src = sg.producer.get(t)
            if src is not None and start <= src[0] < end:
                union(src[0], i)
            elif t in first_reader:
                union(first_reader[t], i)
            else:
                first_reader[t] = i
    groups: dict[int, list[int]] = {}
    for i in range(start, end):
        groups.setdefault(find(i), []).append(i)
    return [groups[r] for r in sorted(groups)]


def split(
    sg: StructGraph, vocab: Vocabulary, merges: Merges
) -> tuple[list[tuple[int, int]], list[tuple[int, list[int]]], dict[int, str]]:
    """The BPE pieces ([start, end) node ranges tiling the canonical order), the node-index groups
    (one per segment, in canonical order) each with the index of its piece, and the unseen tokens
    by position."""
    text, unknown = vocab.encode(graph_tokens(sg))
    pieces = merges.encode(text)
    groups: list[tuple[int, list[int]]] = []
    for p, (a, b) in enumerate(pieces):
        groups.extend((p, g) for g in (components(sg, a, b) if b - a > 1 else [[a]]))
    return pieces, groups, unknown


def segment_struct(
    sg: StructGraph, vocab: Vocabulary, merges: Merges
) -> list[tuple[list[int], SegmentForm, tuple]]:
    """[(node indices, canonical form, unseen tokens)] covering every node exactly once."""
    _, groups, unknown = split(sg, vocab, merges)
    out = []
    for _, g in groups:
        unk = tuple(unknown[i] for i in g if i in unknown)
        out.append((g, segment_form(sg, g), unk))
    return out


def segment_model(graph, db) -> list[Occurrence]:
    """Split a model (graph.Graph, ONNX path/bytes/ModelProto) into occurrences of DB segments."""
    return segmentation(graph, db).occurrences


@dataclass
class Segmentation:
    """A segmented graph: its occurrences and the BPE pieces they came from, so that an occurrence
    can be widened to neighbouring pieces (`widened`)."""

    sg: StructGraph
    pieces: list[tuple[int, int]]  # [start, end) canonical node ranges; they tile the graph
    occurrences: list[Occurrence]
    piece_of: list[int]  # occurrence index -> index of its piece
    members: list[list[int]]  # occurrence index -> its node positions
    unknown: dict[int, str]
    ids: dict[str, int]

    def widened(self, k: int, n_pieces: int, *, forward: bool = True) -> Occurrence | None:
        """Occurrence k grown to the connected component that holds it within `n_pieces`
        consecutive BPE pieces that start (forward) or end (backward) at its own piece. A run of
        consecutive pieces is a run of consecutive nodes in canonical order, so it is convex, and so
        are its components (module doc): the result can be cut out and replaced like any segment.
        None when it would add no node (a lone branch, the graph's first or last piece)."""
        p = self.piece_of[k]
        lo, hi = (p, p + n_pieces) if forward else (p - n_pieces + 1, p + 1)
        lo, hi = max(lo, 0), min(hi, len(self.pieces))
        start, end = self.pieces[lo][0], self.pieces[hi - 1][1]
        anchor = self.members[k][0]
        for comp in components(self.sg, start, end):
            if anchor in comp:
                if len(comp) <= len(self.members[k]):
                    return None
                return _occurrence(self.sg, comp, self.unknown, self.ids)
        return None


def _occurrence(sg: StructGraph, idxs: list[int], unknown: dict[int, str], ids: dict[str, int]) -> Occurrence:
    form = segment_form(sg, idxs)
    return Occurrence(
        segment_id=ids.get(form.hash),
        hash=form.hash,
        node_names=tuple(sg.nodes[i].name for i in form.order),
        inputs=tuple(form.inputs),
        outputs=tuple(form.outputs),
        signature=Signature(form.n_inputs, form.n_outputs, form.spatial_ratio, form.channel_ratio),
        macs=form.macs,
        params=form.params,
        unknown=tuple(unknown[i] for i in idxs if i in unknown),
    )


def segmentation(graph, db) -> Segmentation:
    """`segment_model` with the pieces behind it (see Segmentation)."""
    from autogo_deploy import graph as graph_mod

    if not isinstance(graph, graph_mod.Graph):
        graph = graph_mod.load(graph)
    sg = StructGraph.from_graph(graph)
    vocab, merges = db.vocabulary(), db.merges()
    ids = db.ids_by_hash()
    pieces, groups, unknown = split(sg, vocab, merges)
    return Segmentation(
        sg,
        pieces,
        occurrences=[_occurrence(sg, g, unknown, ids) for _, g in groups],
        piece_of=[p for p, _ in groups],
        members=[g for _, g in groups],
        unknown=unknown,
        ids=ids,
    )
