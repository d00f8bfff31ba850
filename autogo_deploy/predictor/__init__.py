"""Hardware-conditioned PSC predictor: accuracy, latency and energy of computation graphs.

    from autogo_deploy.predictor import Predictor
    p = Predictor.load_default()
    preds = p.predict(graphs, p.embedding("ort-cpu"), ids=candidate_ids)

Modules: features (graph → tensors), compact (fusion, repeated blocks), arch_graphs (fast NB201/FBNet
tensors), model (PSC GNN, torch-geometric), train, fewshot (target embeddings), collect (own
measurements in SQLite), checkpoint (safetensors + JSON), inference (the Predictor API), tasks (what
the CLI commands run), baselines. torch is imported only by the modules that need it.
"""

from __future__ import annotations

__all__ = ["PSCDelta", "Prediction", "Predictor", "TargetEmbedding"]


def __getattr__(name: str):
    if name in {"Predictor", "Prediction", "PSCDelta"}:
        from autogo_deploy.predictor import inference

        return getattr(inference, name)
    if name == "TargetEmbedding":
        from autogo_deploy.predictor.fewshot import TargetEmbedding

        return TargetEmbedding
    raise AttributeError(name)
