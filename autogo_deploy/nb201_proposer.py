"""The NB201-restricted proposer: mutations that keep an NB201 cell network (one cell edge's operation
is replaced by another NB201 operation, in every cell), so every result maps to an arch string whose
true accuracy is known from the benchmark tables (`optimize --space nb201`)."""

from __future__ import annotations

import random

from autogo_deploy.candidate import Candidate, candidate_id
from autogo_deploy.proposers import graph_stats


class NB201Proposer:
    def __init__(self, *, num_classes: int = 10, input_size: int = 32, seed: int = 0):
        self.num_classes = num_classes
        self.input_size = input_size
        self.seed = seed
        self.accepted = 0
        self.rejections: dict[str, int] = {}

    def build(self, arch: str, parent: str | None, changes: list[dict]) -> Candidate:
        from autogo_deploy import zoo

        model = zoo.nb201(arch, num_classes=self.num_classes, input_size=self.input_size, seed=self.seed)
        data = model.SerializeToString()
        return Candidate(
            cid=candidate_id(data),
            model_bytes=data,
            parent=parent,
            generation=0,
            changes=changes,
            arch=arch,
            **graph_stats(data),
        )

    def __call__(self, parent: Candidate, rng: random.Random, n: int) -> list[Candidate]:
        from autogo_deploy.zoo.nb201 import EDGES, OPS, arch_string, parse_arch

        ops = list(parse_arch(parent.arch))
        out, seen = [], set()
        attempts = 0
        while len(out) < n and attempts < 10 * n:
            attempts += 1
            edge = rng.randrange(len(EDGES))
            new_op = rng.choice([o for o in OPS if o != ops[edge]])
            child = list(ops)
            child[edge] = new_op
            arch = arch_string(child)
            if arch in seen:
                continue
            seen.add(arch)
            change = {
                "segment": f"cell edge {EDGES[edge][0]}->{EDGES[edge][1]}: {ops[edge]} (all 15 cells)",
                "replacement": new_op,
                "arch": arch,
            }
            out.append(self.build(arch, parent.cid, parent.changes + [change]))
            self.accepted += 1
        return out

    def close(self) -> None:
        pass
