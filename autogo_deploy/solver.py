"""A small mixed-integer linear programming front end on HiGHS (the only module importing highspy).

Build a `Problem` with named variables (integer, binary or continuous), linear constraints and a
linear objective to minimise, then `solve(time_limit_s=...)`. The answer is a `Certificate`: solver
status, objective, MIP gap, wall-clock solve time and the value of every variable by name. The
certificate is plain data (`to_dict()` is JSON-serialisable), so it can travel with a mutant.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field

INF = math.inf

# HiGHS model status -> our status words. Anything not listed maps to "error".
_STATUS = {
    "kOptimal": "optimal",
    "kInfeasible": "infeasible",
    "kUnboundedOrInfeasible": "infeasible",
    "kUnbounded": "unbounded",
    "kTimeLimit": "time_limit",
    "kIterationLimit": "iteration_limit",
    "kSolutionLimit": "solution_limit",
    "kModelEmpty": "optimal",
    "kInterrupt": "interrupted",
    "kHighsInterrupt": "interrupted",
    "kMemoryLimit": "memory_limit",
}


@dataclass
class Certificate:
    """What the solver says about one problem: enough to audit (and reproduce) the decision."""

    status: str  # optimal | infeasible | unbounded | time_limit | ... | error
    objective: float | None
    gap: float | None  # relative MIP gap reported by HiGHS (0.0 when proven optimal)
    solve_time_ms: float  # wall-clock time of model passing + solve, in milliseconds
    values: dict[str, float] = field(default_factory=dict)
    num_vars: int = 0
    num_constraints: int = 0
    solver: str = ""
    message: str = ""
    solve_cpu_ms: float | None = None  # process CPU time of the same span (robust to a busy machine)

    @property
    def ok(self) -> bool:
        return self.status == "optimal"

    def value(self, name: str) -> int:
        """An integer variable's value, rounded (HiGHS returns floats within feasibility tolerance)."""
        return int(round(self.values[name]))

    def to_dict(self, with_values: bool = False) -> dict:
        out = {
            "status": self.status,
            "objective": self.objective,
            "gap": self.gap,
            "solve_time_ms": round(self.solve_time_ms, 3),
            "solve_cpu_ms": None if self.solve_cpu_ms is None else round(self.solve_cpu_ms, 3),
            "num_vars": self.num_vars,
            "num_constraints": self.num_constraints,
            "solver": self.solver,
        }
        if self.message:
            out["message"] = self.message
        if with_values:
            out["values"] = dict(self.values)
        return out


class Problem:
    """A minimisation MILP. Variables are referred to by the integer index `var()` returns."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._index: dict[str, int] = {}
        self.lower: list[float] = []
        self.upper: list[float] = []
        self.integer: list[bool] = []
        self.cost: list[float] = []
        self.offset = 0.0
        self.rows: list[tuple[dict[int, float], float, float]] = []

    # ---- variables -------------------------------------------------------------------------------
    def var(self, name: str, lb: float = 0.0, ub: float = INF, *, integer: bool = True) -> int:
        if name in self._index:
            raise ValueError(f"duplicate MILP variable name {name!r}")
        if lb > ub:
            raise ValueError(f"variable {name!r}: lower bound {lb} above upper bound {ub}")
        idx = len(self.names)
        self._index[name] = idx
        self.names.append(name)
        self.lower.append(float(lb))
        self.upper.append(float(ub))
        self.integer.append(bool(integer))
        self.cost.append(0.0)
        return idx

    def binary(self, name: str) -> int:
        return self.var(name, 0, 1, integer=True)

    def continuous(self, name: str, lb: float = 0.0, ub: float = INF) -> int:
        return self.var(name, lb, ub, integer=False)

    def index(self, name: str) -> int:
        return self._index[name]

    def fix(self, idx: int, value: float) -> None:
        """Tighten a variable's bounds to one value (infeasible if outside its current bounds)."""
        value = float(value)
        if value < self.lower[idx] or value > self.upper[idx]:
            self.add({}, 1.0, 0.0)  # an explicitly empty-range row: the problem is infeasible
        self.lower[idx] = max(self.lower[idx], value)
        self.upper[idx] = min(self.upper[idx], value)

    # ---- constraints -----------------------------------------------------------------------------
    def add(self, terms: dict[int, float], lb: float = -INF, ub: float = INF) -> None:
        """lb <= sum(coef * x[idx]) <= ub; repeated indices must already be merged by the caller."""
        clean = {i: float(c) for i, c in terms.items() if c != 0}
        self.rows.append((clean, float(lb), float(ub)))

    def eq(self, terms: dict[int, float], rhs: float = 0.0) -> None:
        self.add(terms, rhs, rhs)

    def le(self, terms: dict[int, float], rhs: float) -> None:
        self.add(terms, -INF, rhs)

    def ge(self, terms: dict[int, float], rhs: float) -> None:
        self.add(terms, rhs, INF)

    # ---- objective -------------------------------------------------------------------------------
    def minimize(self, terms: dict[int, float], constant: float = 0.0) -> None:
        """Add terms to the objective (calls accumulate)."""
        for i, c in terms.items():
            self.cost[i] += float(c)
        self.offset += float(constant)

    # ---- solve -----------------------------------------------------------------------------------
    def solve(self, time_limit_s: float = 1.0, *, seed: int = 0, mip_rel_gap: float = 1e-6) -> Certificate:
        import highspy

        start, cpu_start = time.perf_counter(), time.process_time()
        n, m = len(self.names), len(self.rows)
        empty_row = next((r for r in self.rows if not r[0] and (r[1] > 0 or r[2] < 0)), None)
        if empty_row is not None:  # an always-violated row: HiGHS would flag a model error instead
            return Certificate(
                "infeasible", None, None, (time.perf_counter() - start) * 1e3, {}, n, m, _version()
            )
        lp = highspy.HighsLp()
        lp.num_col_ = n
        lp.num_row_ = m
        lp.col_cost_ = self.cost
        lp.col_lower_ = [-highspy.kHighsInf if v == -INF else v for v in self.lower]
        lp.col_upper_ = [highspy.kHighsInf if v == INF else v for v in self.upper]
        lp.row_lower_ = [-highspy.kHighsInf if r[1] == -INF else r[1] for r in self.rows]
        lp.row_upper_ = [highspy.kHighsInf if r[2] == INF else r[2] for r in self.rows]
        lp.offset_ = self.offset
        starts, index, value = [0], [], []
        for terms, _, _ in self.rows:
            for i in sorted(terms):
                index.append(i)
                value.append(terms[i])
            starts.append(len(index))
        lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
        lp.a_matrix_.num_col_ = n
        lp.a_matrix_.num_row_ = m
        lp.a_matrix_.start_ = starts
        lp.a_matrix_.index_ = index
        lp.a_matrix_.value_ = value
        lp.integrality_ = [
            highspy.HighsVarType.kInteger if flag else highspy.HighsVarType.kContinuous
            for flag in self.integer
        ]
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("time_limit", float(max(time_limit_s, 1e-3)))
        h.setOptionValue("random_seed", int(seed))
        h.setOptionValue("mip_rel_gap", float(mip_rel_gap))
        h.setOptionValue("threads", 1)
        pass_status = h.passModel(lp)
        if pass_status == highspy.HighsStatus.kError:
            ms = (time.perf_counter() - start) * 1e3
            return Certificate("error", None, None, ms, {}, n, m, _version(), "HiGHS rejected the model")
        h.run()
        ms = (time.perf_counter() - start) * 1e3
        model_status = h.getModelStatus()
        status = _STATUS.get(model_status.name, "error")
        info = h.getInfo()
        has_solution = info.primal_solution_status == highspy.kSolutionStatusFeasible
        values: dict[str, float] = {}
        objective = None
        gap = None
        if has_solution and n:
            col = list(h.getSolution().col_value)
            values = dict(zip(self.names, col, strict=True))
            objective = float(info.objective_function_value)
            gap = float(info.mip_gap) if any(self.integer) else 0.0
            if gap == highspy.kHighsInf or gap != gap:
                gap = None
        elif status == "optimal":  # empty model
            objective, gap = self.offset, 0.0
        message = "" if status != "error" else f"HiGHS model status {model_status.name}"
        cpu_ms = (time.process_time() - cpu_start) * 1e3
        return Certificate(status, objective, gap, ms, values, n, m, _version(), message, cpu_ms)


@functools.cache
def _version() -> str:
    import highspy

    h = highspy.Highs()
    return f"HiGHS {h.versionMajor()}.{h.versionMinor()}.{h.versionPatch()}"
