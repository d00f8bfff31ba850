"""Synthetic profile documents for report tests (a Measurement built by hand, no timing)."""

from __future__ import annotations

import numpy as np

from autogo_deploy.measure import Measurement
from autogo_deploy.report.json_report import build_profile_doc, model_summary
from autogo_deploy.stats import summarize
from autogo_deploy.target import load_target


def synthetic_measurement(per_node: bool = True, seed: int = 0) -> Measurement:
    rng = np.random.default_rng(seed)
    samples = (5.0 * rng.lognormal(0.0, 0.05, size=200)).tolist() + [9.5, 12.0]  # two outliers
    s = summarize(samples)
    kernels = None
    if per_node:
        kernels = [
            {
                "name": "conv1_nchwc",
                "op_type": "Conv",
                "ms": 2.0,
                "graph_nodes": ["conv1", "bn1", "relu1"],
                "mapping": "fused",
            },
            {
                "name": "conv2_nchwc",
                "op_type": "Conv",
                "ms": 1.5,
                "graph_nodes": ["conv2", "add"],
                "mapping": "inferred",
            },
            {
                "name": "ReorderOutput",
                "op_type": "ReorderOutput",
                "ms": 0.1,
                "graph_nodes": [],
                "mapping": "inserted",
            },
            {"name": "fc", "op_type": "Gemm", "ms": 0.4, "graph_nodes": ["fc"], "mapping": "name"},
            {
                "name": "<script>alert(1)</script>",
                "op_type": "Relu",
                "ms": 0.05,
                "graph_nodes": ["x"],
                "mapping": "name",
            },
        ]
    return Measurement(
        target="ort-cpu",
        backend="ort",
        samples_ms=samples,
        p50_ms=s.p50_ms,
        p90_ms=s.p90_ms,
        p99_ms=s.p99_ms,
        mean_ms=s.mean_ms,
        std_ms=s.std_ms,
        min_ms=s.min_ms,
        max_ms=s.max_ms,
        runs=s.runs,
        ci95_rel=s.ci95_rel,
        ci95_lo_ms=s.ci95_lo_ms,
        ci95_hi_ms=s.ci95_hi_ms,
        stop_reason="converged",
        energy_mj=21.5,
        power_w=4.3,
        power_method="modeled",
        power_detail={"note": "rapl unavailable; using modeled"},
        per_node=kernels,
        env={
            "cpu_model": "Test CPU",
            "affinity": [0, 1],
            "governor": "unreadable",
            "libraries": {"onnxruntime": "x"},
        },
        method={"threads": 1, "ep": "CPUExecutionProvider", "stop_reason": "converged"},
    )


def synthetic_doc(per_node: bool = True) -> dict:
    model = model_summary(
        "tiny.onnx",
        b"model-bytes",
        {"nodes": 9, "macs": 123456, "params": 789, "activation_bytes": 10},
        {"x": [1, 3, 16, 16]},
    )
    return build_profile_doc(synthetic_measurement(per_node), load_target("ort-cpu"), model)


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
]


def chromium_binary() -> str | None:
    import shutil

    return shutil.which("chromium") or shutil.which("chromium-browser")


def render_in_chromium(html_path, tmp_path) -> tuple[str, str]:
    """Open the file in headless Chromium; return (DOM after scripts ran, browser stderr)."""
    import subprocess

    binary = chromium_binary()
    assert binary, "chromium missing"
    profile_dir = tmp_path / "chromium-profile"
    profile_dir.mkdir(exist_ok=True)
    proc = subprocess.run(
        [
            binary,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile_dir}",
            "--dump-dom",
            html_path.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, proc.stderr


def body_attrs(dom: str) -> dict[str, str]:
    import re

    tag = re.search(r"<body([^>]*)>", dom).group(1)
    return dict(re.findall(r'([\w-]+)="([^"]*)"', tag))


def console_errors(stderr: str) -> list[str]:
    return [
        line for line in stderr.splitlines() if "CONSOLE" in line and ("Uncaught" in line or "Error" in line)
    ]
