"""The HiGHS front end: statuses, values, bounds, certificates."""

from __future__ import annotations

import json

import pytest

from autogo_deploy.solver import Problem


def test_integer_optimum_and_certificate():
    # minimise x + 1.5 y  s.t.  2x + 2y >= 7, integers -> x = 4, y = 0 (LP optimum would be 3.5)
    p = Problem()
    x, y = p.var("x", 0, 10), p.var("y", 0, 10)
    p.ge({x: 2, y: 2}, 7)
    p.minimize({x: 1, y: 1.5})
    cert = p.solve(time_limit_s=1.0)
    assert cert.status == "optimal" and cert.ok
    assert cert.value("x") == 4 and cert.value("y") == 0
    assert cert.objective == pytest.approx(4.0)
    assert cert.gap == pytest.approx(0.0)
    assert cert.solve_time_ms > 0
    assert cert.num_vars == 2 and cert.num_constraints == 1
    assert cert.solver.startswith("HiGHS")
    data = json.loads(json.dumps(cert.to_dict(with_values=True)))
    assert data["values"]["x"] == pytest.approx(4.0)


def test_continuous_and_binary_mix():
    p = Problem()
    b = p.binary("b")
    z = p.continuous("z", 0, 5)
    p.le({z: 1, b: -5}, 0)  # z <= 5 b
    p.minimize({z: -1, b: 0.5})  # maximise z - 0.5 b
    cert = p.solve()
    assert cert.ok and cert.value("b") == 1 and cert.values["z"] == pytest.approx(5.0)
    assert cert.objective == pytest.approx(-4.5)


def test_infeasible_is_reported_not_raised():
    p = Problem()
    a = p.var("a", 0, 3)
    p.ge({a: 1}, 5)
    cert = p.solve()
    assert cert.status == "infeasible" and not cert.ok
    assert cert.objective is None and cert.values == {}


def test_fix_outside_bounds_is_infeasible():
    p = Problem()
    a = p.var("a", 1, 4)
    p.fix(a, 9)
    assert p.solve().status == "infeasible"
    q = Problem()
    c = q.var("c", 1, 40)
    q.fix(c, 16)
    cert = q.solve()
    assert cert.ok and cert.value("c") == 16


def test_objective_constant_and_accumulation():
    p = Problem()
    x = p.var("x", 2, 9)
    p.minimize({x: 1.0}, constant=10.0)
    p.minimize({x: 1.0})
    cert = p.solve()
    assert cert.value("x") == 2 and cert.objective == pytest.approx(14.0)


def test_empty_problem_and_bad_names():
    assert Problem().solve().status == "optimal"
    p = Problem()
    p.var("x")
    with pytest.raises(ValueError):
        p.var("x")
    with pytest.raises(ValueError):
        p.var("y", 3, 2)


def test_same_problem_same_answer():
    def build():
        p = Problem()
        xs = [p.var(f"x{i}", 0, 20) for i in range(6)]
        p.ge({x: 3 + i for i, x in enumerate(xs)}, 47)
        p.minimize({x: 5 + (i % 3) for i, x in enumerate(xs)})
        return p

    a, b = build().solve(seed=3), build().solve(seed=3)
    assert a.values == b.values and a.objective == b.objective
