"""autogo-deploy: measure, profile and evolve ONNX computation graphs for real hardware.

Heavy libraries (onnxruntime, torch, tvm, highspy) are imported lazily by the leaf modules.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Graph", "check", "load_target", "optimize", "profile", "__version__"]


def __getattr__(name: str):  # lazy public API, keeps `import autogo_deploy` fast
    if name == "Graph":
        from autogo_deploy.graph import Graph

        return Graph
    if name in {"optimize", "profile", "check"}:
        from autogo_deploy import api

        return getattr(api, name)
    if name == "load_target":
        from autogo_deploy.target import load_target

        return load_target
    raise AttributeError(name)
