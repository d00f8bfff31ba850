"""Mutation search: propose → resolve → predict → verify → measure → Pareto front.

The engine is independent of where mutants come from and how they are scored:
- a *proposer* turns a parent model into valid mutants (segment DB + MILP, or NB201 cell edits);
- a *scorer* predicts (accuracy, latency, energy) for a batch of models, order preserved;
- a *measurer* measures one model on the target (subprocess harness).
Measurements refine the ranking: predicted costs of unmeasured candidates are rescaled by the
median measured/predicted ratio seen so far. Nothing is emitted unless measured and better.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from autogo_deploy import graft
from autogo_deploy.candidate import Candidate
from autogo_deploy.constraints import Budgets
from autogo_deploy.front import children_per_parent, pareto_front
from autogo_deploy.width import width_drop

COST_KEY = {"latency": "latency_ms", "energy": "energy_mj", "macs": "macs", "accuracy": "neg_acc"}


def _or_inf(v: float | None) -> float:
    return math.inf if v is None else v


@dataclass
class SearchConfig:
    objective: str = "latency"
    generations: int = 4
    population: int = 12  # mutants proposed per generation
    measure_top: int = 2  # measured per generation (measure-in-the-loop)
    # On a target whose figures are exact (the input's measurement says `deterministic`, e.g. the
    # npu-sim cost model): measurements per generation there (None: measure_top). Measuring every
    # feasible mutant (a value >= population) builds the front from exact figures only, but on
    # ResNet-50/npu-sim it cost more wall time than it bought (docs/optimize.md), so it is opt-in.
    measure_top_exact: int | None = None
    # How the population is shared among the front's members (cheapest objective first):
    # "even" = the same number of children each; "rank" = in proportion to 1/rank, so the cheapest
    # member gets the most. "auto" = "rank" when the target's figures are exact (measurements there
    # carry no noise, so the cheapest member really is the cheapest; on ResNet-50/npu-sim it beat
    # "even" clearly, docs/optimize.md), else "even" (timed targets: unchanged, not studied there).
    parent_share: str = "auto"
    front_size: int = 6
    # "depth": the front keeps depth as a fourth objective (a shallower cut is not dominated by a deeper
    # one that is cheaper) and holds the cheapest member of each depth first, so models that spent
    # less of the depth leash stay parents; "off": the plain front (cheapest front_size members);
    # "auto": "depth" on exact targets (ResNet-50/npu-sim, 8 seeds: docs/optimize.md), else "off".
    front_strata: str = "auto"
    # After this many generations without a better measured objective, half the children take two
    # changes at once (a mutant of a mutant; the intermediate is not scored) until the best improves:
    # a step out of a local optimum that no single segment replacement leaves. None: never.
    escape_after: int | None = None
    # Deltas of mutants that beat their parent, replayed on the front's cheapest member each
    # generation (graft.py), at most this many, counted in the population; 0: off. Needs a proposer
    # that hands out deltas and a grafter (GraphProposer with graft=True).
    graft: int = 0
    time_limit_s: float | None = None
    seed: int = 0
    strategy: str = "pareto"  # or "random": same proposer and budget, random choice of what to measure


@dataclass
class SearchResult:
    baseline: Candidate
    front: list[Candidate]
    best: Candidate | None
    history: list[dict]
    evaluated: int
    stopped: str
    elapsed_s: float
    points: list[dict] = field(default_factory=list)  # every evaluated candidate, for the Pareto plot


Proposer = Callable[[Candidate, random.Random, int], list[Candidate]]
Scorer = Callable[[list[Candidate]], list[dict]]
Measurer = Callable[[Candidate], dict]


class Search:
    def __init__(
        self,
        baseline: Candidate,
        *,
        proposer: Proposer,
        scorer: Scorer,
        measurer: Measurer,
        budgets: Budgets,
        config: SearchConfig,
        evaluator: Callable[[Candidate], float] | None = None,
        on_generation: Callable[[dict], None] | None = None,
        checkpoint: Path | None = None,
        grafter: Callable[[Candidate, list, random.Random], list[Candidate]] | None = None,
    ):
        self.baseline = baseline
        self.propose = proposer
        self.score = scorer
        self.measure = measurer
        self.budgets = budgets
        self.cfg = config
        self.evaluator = evaluator
        self.on_generation = on_generation
        self.checkpoint = checkpoint
        self.grafter = grafter
        self.library = graft.Library()
        self.key = COST_KEY[config.objective]
        self.pool: dict[str, Candidate] = {baseline.cid: baseline}
        self.history: list[dict] = []
        self.start_generation = 0
        self._stalled = 0  # generations since the best measured objective last improved
        # |modeled - measured| / measured of the objective, for each measured candidate that had the
        # proposer's cost-model figures (how far the cleanup in the measurement moved them)
        self.modeled_gaps: list[float] = []
        self._best_measured = math.inf

    # ---- bookkeeping --------------------------------------------------------------------------
    def scale(self) -> float:
        """Median measured/predicted ratio for the objective (1.0 until something was measured)."""
        if self.key in ("macs", "neg_acc"):
            return 1.0
        ratios = [
            c.measured[self.key] / c.predicted[self.key]
            for c in self.pool.values()
            if c.measured and c.measured.get(self.key) and c.predicted.get(self.key)
        ]
        if not ratios:
            return 1.0
        ratios.sort()
        return ratios[len(ratios) // 2]

    def feasible(self, c: Candidate) -> bool:
        return not self.budgets.violations(c.metrics(self.scale()))

    def front(self) -> list[Candidate]:
        """The Pareto front of the candidates within budgets (and the input), cheapest first
        (front.pareto_front; stratified by depth when front_strata says so)."""
        s = self.scale()
        cands = []
        for c in self.pool.values():
            cost = c.cost(self.key, s)
            if c.has_model and cost is not None and (c is self.baseline or self.feasible(c)):
                cands.append((c, cost))
        return pareto_front(cands, size=self.cfg.front_size, by_depth=self._front_strata() == "depth")

    def _admit(self, cands: list[Candidate]) -> list[Candidate]:
        fresh = list({c.cid: c for c in cands if c.cid not in self.pool}.values())  # one per model
        self._drop_files_of_duplicates(cands, fresh)
        if not fresh:
            return []
        preds = self.score(fresh)
        base_acc = self.baseline.predicted.get("acc")
        base_depth = self.baseline.depth
        base_widths = self.baseline.widths
        for c, p in zip(fresh, preds, strict=True):
            c.predicted = p
            if base_acc is not None and p.get("acc") is not None:
                c.acc_delta = float(p["acc"]) - float(base_acc)
            if base_depth:
                c.depth_drop = 1.0 - c.depth / base_depth
            if base_widths:
                c.width_drop = width_drop(base_widths, c.widths)
            self.pool[c.cid] = c
        return fresh

    def _drop_files_of_duplicates(self, cands: list[Candidate], fresh: list[Candidate]) -> None:
        """A proposal not admitted (a model already seen) may have brought a spill file of its own."""
        kept = {c.spill_path for c in [*self.pool.values(), *fresh] if c.spill_path is not None}
        for c in cands:
            if c.spill_path is not None and c.spill_path not in kept:
                c.model_bytes = b""  # unlinks it

    KEEP_MEASURED = 4  # measured candidates off the front whose bytes are kept (the cheapest ones)
    RANDOM_POOL_BYTES = 2 << 30  # random search: measured models kept as parents, at the input's size

    def _release_memory(self) -> None:
        """Keep model bytes only for the front, the baseline and a few measured candidates (big models
        are 100+ MB each; a 21-minute ResNet-50 run on npu-sim measures ~1,200): the cheapest
        KEEP_MEASURED, or for random search, which draws parents from every measured candidate kept,
        a uniform sample of them (`_random_sample`). Released candidates keep their record (figures,
        changes); a checkpoint holds the files of the kept ones only."""
        keep = {c.cid for c in self.front()} | {self.baseline.cid}
        measured = [c for c in self.pool.values() if c.measured and c.has_model]
        if self.cfg.strategy == "random":
            keep |= self._random_sample(measured)
        else:
            ranked = sorted(measured, key=lambda c: (_or_inf(c.cost(self.key)), c.cid))
            keep |= {c.cid for c in ranked[: self.KEEP_MEASURED]}
        for c in self.pool.values():
            if c.cid not in keep and c.has_model:
                c.model_bytes = b""  # drops the bytes and the spill file

    def _random_sample(self, measured: list[Candidate]) -> set[str]:
        """The measured candidates random search keeps as parents: as many as RANDOM_POOL_BYTES holds
        at the input's size (at least KEEP_MEASURED; every one for small models), chosen by the
        lowest seeded hash of their id. That is a uniform sample of everything measured so far (the
        sample of all = the sample of the last sample plus the new ones), the same after a resume,
        and a candidate that left it never comes back, so its bytes may go. Keeping every measured
        ResNet-50 mutant grew a random search on npu-sim to 20 GB by generation 101."""
        k = max(self.KEEP_MEASURED, self.RANDOM_POOL_BYTES // max(1, self.baseline.nbytes))

        def draw(c: Candidate) -> bytes:
            return hashlib.blake2b(f"{self.cfg.seed}/{c.cid}".encode(), digest_size=8).digest()

        return {c.cid for c in sorted(measured, key=draw)[:k]}

    def exact(self) -> bool:
        """Whether the target's figures are exact (the input's measurement is deterministic)."""
        return bool((self.baseline.measured or {}).get("deterministic"))

    def measure_count(self) -> int:
        """Measurements per generation: measure_top, or on an exact target measure_top_exact when set."""
        if self.exact() and self.cfg.measure_top_exact is not None:
            return self.cfg.measure_top_exact
        return self.cfg.measure_top

    def _front_strata(self) -> str:
        if self.cfg.strategy == "random":  # the baseline search keeps the plain front
            return "off"
        if self.cfg.front_strata == "auto":
            return "depth" if self.exact() else "off"
        return self.cfg.front_strata

    def _parent_share(self) -> str:
        if self.cfg.parent_share == "auto":
            return "rank" if self.exact() else "even"
        return self.cfg.parent_share

    def _measure_front_entrants(self) -> None:
        """On an exact target, no front member stays a prediction: after a rescaling moved an unmeasured
        mutant onto the front (or to its head, where the rank share gives it most of the children), it
        is measured now (~1 s on npu-sim), until the front holds measured figures only (at most
        front_size measurements). A member with the target's cost-model figures from the proposer
        (Candidate.modeled) is not a prediction and waits for the final measurement. Timed targets
        keep measure_top per generation: a measurement costs seconds there, and the final front is
        measured anyway."""
        if not self.exact():
            return
        for _ in range(self.cfg.front_size):
            pending = [c for c in self.front() if c.measured is None and c.modeled is None]
            if not pending:
                return
            self._measure(pending[0])

    def _compound(self) -> bool:
        """Whether this generation's children take two changes (the best has stalled long enough)."""
        after = self.cfg.escape_after
        return self.cfg.strategy != "random" and after is not None and self._stalled >= after

    def _grandchildren(
        self, parent: Candidate, children: list[Candidate], rng: random.Random
    ) -> list[Candidate]:
        """Half of the children (drawn at random) replaced by one mutant of theirs, a two-change child
        of `parent`; the other half stays, so single changes are still tried while the best stalls."""
        out = []
        for child in children:
            if rng.random() < 0.5:
                out.append(child)
                continue
            for g in self.propose(child, rng, 1):
                g.parent = parent.cid  # the intermediate is never admitted; its change stays listed
                g.delta = None  # its delta is to the intermediate: not a change `parent` can replay
                out.append(g)
            if child.cid not in self.pool:
                child.model_bytes = b""  # the intermediate's bytes (and spill file) are not kept
        return out

    def _grafts(self, recipient: Candidate, rng: random.Random, shares: list[int]) -> list[Candidate]:
        """This generation's grafts onto the front's cheapest member (its share shrinks by as many):
        the library's largest gains that apply to it and were not tried on it yet."""
        if not (self.grafter and self.cfg.graft > 0 and self.cfg.strategy != "random" and shares):
            return []
        picks = self.library.pick_for(recipient, min(self.cfg.graft, shares[0]))
        shares[0] -= len(picks)
        return self.grafter(recipient, picks, rng) if picks else []

    def _measured_best(self) -> float:
        """The best measured objective so far (inf before anything was measured)."""
        costs = [c.cost(self.key) for c in self.pool.values() if c.measured and c.cost(self.key) is not None]
        return min(costs, default=math.inf)

    def _track_stall(self) -> None:
        best = self._measured_best()
        if best < self._best_measured:
            self._best_measured, self._stalled = best, 0
        else:
            self._stalled += 1

    def _measure(self, c: Candidate) -> None:
        if c.measured is None:
            c.measured = self.measure(c)
            modeled, measured = (c.modeled or {}).get(self.key), c.measured.get(self.key)
            if modeled is not None and measured:
                self.modeled_gaps.append(abs(modeled - measured) / measured)
            if self.evaluator is not None:
                c.evaluator = self.evaluator(c)

    # ---- main loop ----------------------------------------------------------------------------
    def run(self) -> SearchResult:
        t0 = time.perf_counter()
        rng = random.Random(self.cfg.seed)
        self._measure(self.baseline)
        stopped = "generations"
        evaluated = 0
        try:
            for gen in range(self.start_generation, self.cfg.generations):
                rng.seed(f"{self.cfg.seed}/{gen}")
                g0 = time.perf_counter()
                parents = self.front() or [self.baseline]
                share = self._parent_share()
                if self.cfg.strategy == "random":  # random search: parents drawn from everything valid
                    pool = sorted((c for c in self.pool.values() if c.has_model), key=lambda c: c.cid)
                    parents = rng.sample(pool, min(len(pool), len(parents)))
                    share = "even"
                shares = children_per_parent(len(parents), self.cfg.population, share)
                proposals = self._grafts(parents[0], rng, shares)
                compound = self._compound()
                for parent, n in zip(parents, shares, strict=True):
                    if n:
                        children = self.propose(parent, rng, n)
                        proposals += self._grandchildren(parent, children, rng) if compound else children
                for c in proposals:
                    c.generation = gen + 1
                fresh = self._admit(proposals)
                self.library.offer_mutants(fresh, self.pool, self.key, self.feasible)
                evaluated += len(fresh)
                s = self.scale()
                ok = [c for c in fresh if self.feasible(c)]
                if self.cfg.strategy == "random":
                    rng.shuffle(ok)
                else:
                    # exploit + explore: the best-predicted half of the measurement slots, the rest drawn
                    # at random from the other feasible mutants (predictions transfer imperfectly to
                    # networks far from the predictor's training families; measurements correct that)
                    ok.sort(key=lambda c: (_or_inf(c.cost(self.key, s)), c.cid))
                    k = (self.cfg.measure_top + 1) // 2
                    rest = ok[k:]
                    rng.shuffle(rest)
                    ok = ok[:k] + rest
                for c in ok[: self.measure_count()]:
                    self._measure(c)
                self._measure_front_entrants()
                self._release_memory()
                self._track_stall()
                self._record(gen + 1, len(proposals), len(fresh), len(ok), time.perf_counter() - g0, t0)
                if self.cfg.time_limit_s and time.perf_counter() - t0 > self.cfg.time_limit_s:
                    stopped = "time limit"
                    break
        except KeyboardInterrupt:
            stopped = "interrupted (Ctrl-C): keeping the best so far"
        front = self.front()
        for c in front:  # the final front is always measured
            try:
                self._measure(c)
            except KeyboardInterrupt:
                stopped = "interrupted during final measurement"
                break
        front = [c for c in self.front() if c.measured]
        best = self._best(front)
        scale = self.scale()
        points = [
            {"x": c.cost(self.key, scale), "y": c.acc_delta or 0.0, "measured": bool(c.measured), "id": c.cid}
            for c in sorted(self.pool.values(), key=lambda c: c.cid)
        ]
        return SearchResult(
            self.baseline, front, best, self.history, evaluated, stopped, time.perf_counter() - t0, points
        )

    def _best(self, front: list[Candidate]) -> Candidate | None:
        """The measured candidate with the best objective within budgets, better than the input.

        When the input itself breaks a (measured) budget, any candidate within budgets improves on it;
        otherwise the candidate's objective must beat the input's — for a timed objective by more than
        the measurement noise (the larger of the two medians' 95% CI half-widths), so a mutant that
        only measured faster by chance is not emitted. Unless a latency budget says what is allowed,
        nothing measured slower than the input is ever returned.
        """
        base = self.baseline.cost(self.key)
        base_ok = not self.budgets.violations(self.baseline.metrics())
        timed = self.key in ("latency_ms", "energy_mj")

        def beats_input(c: Candidate) -> bool:
            margin = max(_noise(self.baseline), _noise(c)) if timed else 0.0
            return base is not None and c.cost(self.key) < base * (1.0 - margin)

        ok = [
            c
            for c in front
            if c is not self.baseline
            and c.measured
            and not self.budgets.violations(c.metrics())
            and c.cost(self.key) is not None
            and (not base_ok or beats_input(c))
        ]
        if self.budgets.limits.get("latency_ms") is None:
            ok = [c for c in ok if c.cost("latency_ms") <= self.baseline.cost("latency_ms")]
        return min(ok, key=lambda c: (c.cost(self.key), c.cid), default=None)

    def _record(self, gen: int, proposed: int, fresh: int, feasible: int, gen_s: float, t0: float) -> None:
        front = self.front()
        best = front[0] if front else self.baseline
        entry = {
            "generation": gen,
            "proposed": proposed,
            "new_valid": fresh,
            "within_budgets": feasible,
            "measured_total": sum(1 for c in self.pool.values() if c.measured),
            "best_cid": best.cid,
            "best_cost": best.cost(self.key, self.scale()),
            "best_measured": bool(best.measured),
            "candidates_per_s": fresh / gen_s if gen_s > 0 else 0.0,
            "elapsed_s": time.perf_counter() - t0,
            "stalled": self._stalled,  # generations without a better measured objective
        }
        self.history.append(entry)
        if self.checkpoint:
            self.save_checkpoint(gen)
        if self.on_generation:
            self.on_generation(entry)

    # ---- checkpoint / resume (JSON + ONNX files, no pickle; search_checkpoint.py) --------------
    def save_checkpoint(self, generation: int) -> None:
        from autogo_deploy import search_checkpoint

        search_checkpoint.write(self, generation)

    def load_checkpoint(self, folder: Path) -> None:
        from autogo_deploy import search_checkpoint

        search_checkpoint.read(self, folder)
        self._best_measured = self._measured_best()
        self._stalled = int(self.history[-1].get("stalled", 0)) if self.history else 0


def _noise(c: Candidate) -> float:
    """Relative 95% CI half-width of a candidate's measured median; 0 for simulated or exact figures."""
    m = c.measured or {}
    if m.get("deterministic"):
        return 0.0
    return max(0.0, float(m.get("ci95_rel") or 0.0))
