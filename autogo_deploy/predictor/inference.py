"""The predictor's library API, used by the optimizer.

    from autogo_deploy.predictor import Predictor
    p = Predictor.load_default()
    emb = p.embedding("ort-cpu")                     # trained, calibrated, or an error saying how to get one
    preds = p.predict([graph_a, (graph_b, ["conv_3", "relu_4"]), model_bytes], emb, ids=["a", "b", "c"])
    preds[1].id, preds[1].acc, preds[1].latency_ms, preds[1].energy_mj, preds[1].source  # 'predicted'
    d = p.psc_delta(graph, ["conv_3", "relu_4"], replacement_model, emb)

Items may be `Graph`s, ONNX models (ModelProto, bytes, path), `GraphTensors`, or PSC triples
`(graph, segment_node_names)`; a plain graph is split at its default PSC split (middle third by depth).
Predictions come back in input order, each carrying the caller's id (internally the batch is sorted
by graph size, so order preservation is tested, not assumed).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from autogo_deploy.errors import InputError, ModelError
from autogo_deploy.predictor import checkpoint as ckpt
from autogo_deploy.predictor.features import GraphTensors, default_parts, from_graph, segment_parts
from autogo_deploy.predictor.fewshot import COUNT_FEATURES, TargetEmbedding, count_features


@dataclass(frozen=True)
class Prediction:
    id: object
    acc: float  # predicted CIFAR-10 top-1 accuracy, percent (NB201-trained head)
    latency_ms: float | None
    energy_mj: float | None
    source: str = "predicted"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PSCDelta:
    before: Prediction
    after: Prediction

    @property
    def acc(self) -> float:
        return self.after.acc - self.before.acc

    @property
    def latency_ms(self) -> float | None:
        if self.after.latency_ms is None or self.before.latency_ms is None:
            return None
        return self.after.latency_ms - self.before.latency_ms

    @property
    def energy_mj(self) -> float | None:
        if self.after.energy_mj is None or self.before.energy_mj is None:
            return None
        return self.after.energy_mj - self.before.energy_mj

    def to_dict(self) -> dict:
        return {"before": self.before.to_dict(), "after": self.after.to_dict(), "delta_acc": self.acc,
                "delta_latency_ms": self.latency_ms, "delta_energy_mj": self.energy_mj,
                "source": "predicted"}  # fmt: skip


def embeddings_dir(checkpoint_id: str) -> Path:
    from autogo_deploy.paths import cache_dir

    return cache_dir() / "predictor" / "embeddings" / checkpoint_id


class Predictor:
    def __init__(self, checkpoint: ckpt.Checkpoint):
        self.checkpoint = checkpoint
        self.model = checkpoint.model
        man = checkpoint.manifest
        self._mu = np.asarray(man["acc_mu"], np.float64)
        self._sd = np.asarray(man["acc_sd"], np.float64)
        self.energy_devices = set(man.get("energy_devices", []))

    # ---- loading -------------------------------------------------------------------------------
    @classmethod
    def load(cls, folder: str | Path) -> Predictor:
        return cls(ckpt.load(folder))

    @classmethod
    def load_default(cls) -> Predictor:
        """$AUTOGO_PREDICTOR_CHECKPOINT, else a checkpoint trained into the cache folder by
        `predictor train`, else the small checkpoint shipped in the package."""
        env = os.environ.get("AUTOGO_PREDICTOR_CHECKPOINT")
        candidates = [Path(env)] if env else [ckpt.cache_checkpoint_dir(), ckpt.packaged_dir()]
        for i, folder in enumerate(candidates):
            if (folder / ckpt.MANIFEST).is_file():
                try:
                    return cls.load(folder)
                except InputError as exc:
                    if env or i == len(candidates) - 1:
                        raise
                    import sys

                    print(f"note: skipping predictor checkpoint {folder}: {exc.one_line()}", file=sys.stderr)
        raise ModelError(
            "no predictor checkpoint found",
            hint="run `autogo-deploy predictor train` (needs ../shared/data) or set AUTOGO_PREDICTOR_CHECKPOINT",
        )

    @property
    def id(self) -> str:
        return self.checkpoint.id

    @property
    def trained_targets(self) -> list[str]:
        return list(self.model.devices)

    # ---- target embeddings ---------------------------------------------------------------------
    def embedding(self, target) -> TargetEmbedding:
        """The embedding for a target name / Target / TargetEmbedding.

        Order: an embedding calibrated for this checkpoint on this machine (cache folder), else one
        kept in the checkpoint folder (fitted on collected measurements when the checkpoint was
        made), else the target's trained embedding, else an InputError telling how to calibrate."""
        if isinstance(target, TargetEmbedding):
            if target.checkpoint and target.checkpoint != self.id:
                raise InputError(
                    f"embedding {target.name!r} was fitted for checkpoint {target.checkpoint}, not {self.id}",
                    hint=f"re-run `autogo-deploy predictor calibrate --target {target.name}`",
                )
            return target
        name = getattr(target, "name", target)
        if not isinstance(name, str):
            raise InputError(f"not a target: {target!r}")
        path = embeddings_dir(self.id) / f"{name}.json"
        if path.is_file():  # measured on this machine by `predictor calibrate`: preferred
            return self.embedding(TargetEmbedding.load(path))
        kept = ckpt.embedding_file(self.checkpoint.path, name) if self.checkpoint.path else None
        if kept is not None and kept.is_file():
            return self.embedding(TargetEmbedding.load(kept))
        trained = self.trained_embedding(name)
        if trained is not None:
            return trained
        raise InputError(
            f"the predictor has no embedding for target {name!r}",
            hint=f"run `autogo-deploy predictor calibrate --target {name}` (measures the 10 reference archs); "
            f"trained targets: {', '.join(self.model.devices) or 'none'}",
        )

    def trained_embedding(self, name: str) -> TargetEmbedding | None:
        """The embedding learnt for `name` in training (None for a target training never saw)."""
        if name not in self.model.devices:
            return None
        d = self.model.devices.index(name)
        z = self.model.lat_embeddings()[d].detach().double().numpy().tolist()
        ze = None
        if name in self.energy_devices:
            ze = self.model.energy_embeddings()[d].detach().double().numpy().tolist()
        return TargetEmbedding(name, z, ze, method="trained", checkpoint=self.id)

    def reference_basis(self, space: str = "nb201") -> np.ndarray:
        from autogo_deploy.predictor.arch_graphs import nb201_tensors
        from autogo_deploy.predictor.datasets import reference_archs

        if space != "nb201":
            raise InputError("reference sets other than nb201 are not supported")
        graphs = [nb201_tensors(a) for a in reference_archs("nb201")]
        return self.basis(graphs)

    def z_train(self) -> np.ndarray:
        """The trained targets' latency embeddings (the prior for few-shot fits)."""
        return self.model.lat_embeddings().detach().double().numpy()

    @staticmethod
    def latency(emb: TargetEmbedding, graphs: list[GraphTensors], basis: np.ndarray) -> np.ndarray:
        """latency_ms of graphs under an embedding: G · z, or the least-squares head on op counts
        where the few-shot fit selected it (fewshot.fit_embedding) and it predicts a positive value."""
        lat = np.asarray(basis, np.float64) @ np.asarray(emb.z_latency, np.float64)
        if emb.head_applies(COUNT_FEATURES):
            head = emb.head_predict(count_features(graphs, basis))
            # a linear head can extrapolate to <= 0 on graphs unlike the references: keep G · z there
            lat = np.where(head > 0, head, lat)
        return lat

    # ---- prediction ----------------------------------------------------------------------------
    def featurize(self, item) -> tuple[GraphTensors, np.ndarray]:
        if isinstance(item, GraphTensors):
            return item, default_parts(item)
        if isinstance(item, tuple) and len(item) == 2 and not isinstance(item[0], str | bytes):
            graph, segment = item
            graph = _as_graph(graph)
            names = list(getattr(segment, "node_names", None) or getattr(segment, "nodes", None) or segment)
            index = {n.name: i for i, n in enumerate(graph.nodes)}
            unknown = [nm for nm in names if nm not in index]
            if unknown or not names:
                raise InputError(
                    f"segment node(s) not in the graph: {', '.join(unknown[:5]) or '(empty segment)'}"
                )
            gt = from_graph(graph, protect_names=names)
            wanted = {index[nm] for nm in names}
            seg = [i for i, m in enumerate(gt.members) if any(v in wanted for v in m)]
            return gt, segment_parts(gt, seg)
        gt = from_graph(_as_graph(item))
        return gt, default_parts(gt)

    def raw(self, graphs: list[GraphTensors], parts: list[np.ndarray] | None = None, batch_size: int = 128):
        """(accuracy %, basis) for graphs in input order (batched by size internally)."""
        from autogo_deploy.predictor.train import acc_inverse, predict_raw

        parts = parts if parts is not None else [default_parts(g) for g in graphs]
        order = sorted(range(len(graphs)), key=lambda i: (graphs[i].num_nodes, i))
        z, basis = predict_raw(self.model, [graphs[i] for i in order], [parts[i] for i in order], batch_size)
        acc = np.empty(len(graphs))
        out_basis = np.empty_like(basis)
        acc[order] = acc_inverse(z[:, 0] * self._sd[0] + self._mu[0])
        out_basis[order] = basis
        return acc, out_basis

    def basis(self, graphs: list[GraphTensors]) -> np.ndarray:
        return self.raw(graphs)[1]

    def predict(self, items: Sequence, target=None, *, ids: Sequence | None = None) -> list[Prediction]:
        """Predictions for `items` (see module doc), in input order, each tagged with its id."""
        items = list(items)
        ids = list(range(len(items))) if ids is None else list(ids)
        if len(ids) != len(items):
            raise InputError(f"{len(ids)} ids for {len(items)} items")
        emb = self.embedding(target) if target is not None else None
        feats = [self.featurize(it) for it in items]
        acc, basis = self.raw([f[0] for f in feats], [f[1] for f in feats])
        lat = self.latency(emb, [f[0] for f in feats], basis) if emb else [None] * len(items)
        energy = basis @ np.asarray(emb.z_energy) if emb and emb.z_energy else [None] * len(items)
        return [
            Prediction(
                id=ids[i],
                acc=float(acc[i]),
                latency_ms=None if lat[i] is None else float(lat[i]),
                energy_mj=None if energy[i] is None else float(energy[i]),
            )
            for i in range(len(items))
        ]

    def psc_delta(self, graph, occurrence, replacement_graph, target=None) -> PSCDelta:
        """Predicted change when segment `occurrence` (node names) of `graph` becomes `replacement_graph`.

        The replacement's graph inputs/outputs bind, in order, to the segment's boundary tensors
        (`Graph.boundary`). Both sides are encoded as PSC triples, so the change is attributed to S → S'.
        """
        from autogo_deploy.graph import load

        graph = _as_graph(graph)
        names = list(
            getattr(occurrence, "node_names", None) or getattr(occurrence, "nodes", None) or occurrence
        )
        ins, outs = graph.boundary(names)
        repl = replacement_graph.model if hasattr(replacement_graph, "model") else replacement_graph
        mutated = graph.splice(names, repl, ins, outs, prefix="psc")
        mg = load(mutated, cleanup=False)
        before = {n.name for n in graph.nodes} - set(names)
        new_names = [n.name for n in mg.nodes if n.name not in before]
        if not new_names:
            raise InputError("the replacement adds no nodes; nothing to attribute a change to")
        a, b = self.predict([(graph, names), (mg, new_names)], target, ids=["before", "after"])
        return PSCDelta(a, b)


def _as_graph(item):
    from autogo_deploy.graph import Graph, from_verified, load

    if isinstance(item, Graph):
        return item
    if hasattr(item, "model_bytes"):  # a search Candidate: its own checked model is not validated again
        return from_verified(item.model_bytes) if item.verified else load(item.model_bytes, cleanup=False)
    return load(item, cleanup=False)
