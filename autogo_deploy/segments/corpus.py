"""The mining corpus: which networks, in which order, and how each becomes a StructGraph.

Families (names accepted by `db build --families`):
- nb201: all 15,625 NAS-Bench-201 cells on the CIFAR-10 skeleton, in NB201's gen_all order;
- nb101: the 500 cells of ../shared/data/nb101 then >= 5,000 distinct valid cells sampled with a
  fixed seed (at most 7 vertices and 9 edges after pruning, input connected to output);
- fbnet: the 5,000 FBNet-space networks of ../shared/data/fbnet (CSV order);
- resnet, vgg, mobilenet_v2, edsr: the zoo's ResNet-18/50/101, VGG-16-BN, MobileNetV2, EDSR.

NAS families go through the weight-free fast path (lite.py); the big zoo models also do when lite
can reproduce graph.load's cleanup exactly, else they are loaded through graph.load.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autogo_deploy.errors import InputError

FAMILIES = ("nb201", "nb101", "fbnet", "resnet", "vgg", "mobilenet_v2", "edsr")
ZOO_MODELS = {
    "resnet": ("resnet18", "resnet50", "resnet101"),
    "vgg": ("vgg16_bn",),
    "mobilenet_v2": ("mobilenet_v2",),
    "edsr": ("edsr",),
}
NB101_SAMPLES = 5000


@dataclass(frozen=True)
class Item:
    family: str
    source: str  # human-readable provenance, e.g. "nb201:|nor_conv_3x3~0|+...|"
    arch: object  # what the zoo builder takes (arch string, (matrix, ops), op list, model name)


def parse_families(text: str | list[str] | None) -> tuple[str, ...]:
    if text is None:
        return FAMILIES
    names = text.replace(",", " ").split() if isinstance(text, str) else list(text)
    bad = [n for n in names if n not in FAMILIES]
    if bad or not names:
        raise InputError(
            f"unknown corpus family {', '.join(bad) or '(none)'}", hint=f"valid: {', '.join(FAMILIES)}"
        )
    return tuple(f for f in FAMILIES if f in names)


def _nb201_items(limit: int | None) -> list[Item]:
    import importlib

    nb201 = importlib.import_module("autogo_deploy.zoo.nb201")
    n = nb201.NUM_ARCHS if limit is None else min(limit, nb201.NUM_ARCHS)
    archs = (nb201.arch_from_ordinal(i) for i in range(n))
    return [Item("nb201", f"nb201:{a}", a) for a in archs]


def _nb101_key(matrix: np.ndarray, ops: list[str]) -> str:
    bits = "".join(str(int(v)) for v in matrix[np.triu_indices(len(ops), 1)])
    short = {"input": "i", "output": "o", "conv3x3-bn-relu": "3", "conv1x1-bn-relu": "1", "maxpool3x3": "m"}
    return f"{len(ops)}:{bits}:{''.join(short[o] for o in ops)}"


def _quick_prune(bits: list[int], ops: list[str]) -> tuple | None:
    """nasbench's pruning as bitmasks: None when invalid (input and output disconnected or more
    than 9 edges left), else a key of the pruned cell (kept vertices, their edges and ops)."""
    succ = [0] * 7
    for (a, b), on in zip(_UPPER, bits, strict=True):
        if on:
            succ[a] |= 1 << b
    fwd = 1
    for v in range(7):
        if fwd >> v & 1:
            fwd |= succ[v]
    if not fwd >> 6 & 1:
        return None
    back = 1 << 6
    for v in range(5, -1, -1):
        if succ[v] & back:
            back |= 1 << v
    keep = fwd & back
    kept = [v for v in range(7) if keep >> v & 1]
    if sum(bin(succ[v] & keep).count("1") for v in kept) > 9:
        return None
    rank = {v: r for r, v in enumerate(kept)}
    return tuple((ops[v], tuple(rank[u] for u in kept if succ[v] >> u & 1)) for v in kept)


_UPPER = [(a, b) for a in range(7) for b in range(a + 1, 7)]


def nb101_sample(n: int, seed: int) -> list[tuple[np.ndarray, list[str]]]:
    """`n` distinct valid NB101 cells drawn with `seed` (random 7-vertex DAGs, edge probability 0.3,
    uniform ops, pruned like nasbench; rejected when input and output are disconnected or more than
    9 edges remain)."""
    import importlib

    nb101 = importlib.import_module("autogo_deploy.zoo.nb101")
    rng = np.random.default_rng(seed)
    seen: set[tuple] = set()
    out = []
    iu = np.triu_indices(7, 1)
    while len(out) < n:
        bits = (rng.random(len(_UPPER)) < 0.3).astype(int).tolist()
        ops = ["input"] + [nb101.OPS[int(k)] for k in rng.integers(0, 3, 5)] + ["output"]
        key = _quick_prune(bits, ops)
        if key is None or key in seen:
            continue
        seen.add(key)
        m = np.zeros((7, 7), dtype=np.int64)
        m[iu] = bits
        out.append(nb101.prune(m, ops))  # the zoo's own pruning gives the spec we build
    return out


def _data_file(rel: str, require: bool, notes: list[str]) -> Path | None:
    """A file of ../shared/data; missing: InputError when required, else None and a note."""
    from autogo_deploy.paths import shared_data_dir

    base = shared_data_dir(required=False)
    path = base / rel if base is not None else None
    if path is not None and path.is_file():
        return path
    if require:
        raise InputError(
            f"benchmark data file {rel} not found",
            hint="expected under ../shared/data or $AUTOGO_SHARED_DATA",
        )
    notes.append(f"{rel} not found: left out of the corpus")
    return None


def _nb101_items(seed: int, samples: int, require: bool, notes: list[str]) -> list[Item]:
    import importlib

    nb101 = importlib.import_module("autogo_deploy.zoo.nb101")
    path = _data_file("nb101/nb101_500archs_naslib.json", require, notes)
    data = json.loads(path.read_text())["nasbench101"]["cifar10"] if path is not None else {}
    items, seen = [], set()
    for key in data:  # file order; all 500 (some prune to the same cell: they weigh twice, as in the file)
        m, ops = nb101.prune(*nb101.spec_from_naslib_key(key))
        k = _nb101_key(m, ops)
        seen.add(k)
        items.append(Item("nb101", f"nb101:{k}", (m.tolist(), ops)))
    target = len(items) + samples
    for m, ops in nb101_sample(target, seed):  # enough distinct cells even if all 500 reappear
        k = _nb101_key(m, ops)
        if k in seen:
            continue
        seen.add(k)
        items.append(Item("nb101", f"nb101:{k}", (m.tolist(), ops)))
        if len(items) >= target:
            break
    return items


def _fbnet_items(limit: int | None, require: bool, notes: list[str]) -> list[Item]:
    path = _data_file("fbnet/fbnet_latency_train_devices.csv", require, notes)
    if path is None:
        return []
    with path.open(newline="") as fh:
        rows = [r["arch_str"].split() for r in csv.DictReader(fh)]
    if limit is not None:
        rows = rows[:limit]
    return [Item("fbnet", f"fbnet:{i}", ops) for i, ops in enumerate(rows)]


def items(
    families=FAMILIES,
    *,
    seed: int = 0,
    limit: int | None = None,
    nb101_samples: int = NB101_SAMPLES,
    require_data: bool = True,
    notes: list[str] | None = None,
) -> list[Item]:
    """Corpus items in a fixed order. `limit` caps each NAS family (small test corpora). Without
    ../shared/data, `require_data=False` leaves the data-file parts out (and says so in `notes`)."""
    notes = [] if notes is None else notes
    out: list[Item] = []
    for fam in families:
        if fam in ZOO_MODELS:
            out += [Item(fam, name, name) for name in ZOO_MODELS[fam]]
        elif fam == "nb201":
            out += _nb201_items(limit)
        elif fam == "nb101":
            samples = nb101_samples if limit is None else 0
            out += _nb101_items(seed, samples, require_data, notes)[: limit or None]
        elif fam == "fbnet":
            out += _fbnet_items(limit, require_data, notes)
    return out


def load_struct(item: Item):
    """The StructGraph of a corpus item through the real path: zoo ONNX with weights + graph.load."""
    from autogo_deploy import zoo
    from autogo_deploy.graph import load
    from autogo_deploy.segments.structure import StructGraph

    if item.family == "nb201":
        model = zoo.nb201(item.arch)
    elif item.family == "nb101":
        model = zoo.nb101(*item.arch)
    elif item.family == "fbnet":
        model = zoo.fbnet(item.arch)
    else:
        model = zoo.build(item.arch)
    return StructGraph.from_graph(load(model), source=item.source)


def struct_of(item: Item):
    """(StructGraph, loaded_via_graph_load) of a corpus item: the fast path when it is exact."""
    from autogo_deploy.segments.lite import NotEmulated, build_lite

    try:
        return build_lite(item.family, item.arch, source=item.source), False
    except NotEmulated:
        return load_struct(item), True
