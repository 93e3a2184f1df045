"""The lecture notes' claims, each measured by an example (12-18): run tiny, check the figures.

Every test runs one example's ``main(["--tiny", ...])`` in-process and checks that what
it prints and returns is what the measurement gives: recomputed from the returned
params with NumPy, or a property that must hold (a closed form, an identity).
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")


def run(name: str, tmp_path, capsys) -> tuple[dict, str]:
    if EXAMPLES not in sys.path:   # as `python examples/NN_x.py` has it: they import _shared.py
        sys.path.insert(0, EXAMPLES)
    path = os.path.join(EXAMPLES, f"{name}.py")
    spec = importlib.util.spec_from_file_location("notes_" + name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(["--tiny", "--out", str(tmp_path)])
    return result, capsys.readouterr().out


def numpy_hidden(params, x, f):
    a, out = np.asarray(x, np.float64), []
    for p in params[:-1]:
        z = a @ np.asarray(p["w"], np.float64) + np.asarray(p["b"], np.float64)
        a = np.where(z >= 0, z, float(p["alpha"]) * z) if "alpha" in p else f(z)
        out.append((z, a))
    return out


NUMPY = {"relu": lambda z: np.maximum(z, 0), "leaky_relu": lambda z: np.where(z >= 0, z, 0.01 * z),
         "elu": lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0))), "tanh": np.tanh,
         "sigmoid": lambda z: 1 / (1 + np.exp(-z)), "prelu": None}


def test_update_rule_moves_against_the_slope_by_the_closed_form(tmp_path, capsys):
    result, printed = run("12_update_rule_slopes", tmp_path, capsys)
    a, b = result["moves"]["a"], result["moves"]["b"]
    assert a["slope"] < 0 < a["w_new"] - a["w_old"] and b["slope"] > 0 > b["w_new"] - b["w_old"]
    for point in (a, b):   # L = (w - 2)^2 + 1: slope 2 (w - 2), step 0.1
        np.testing.assert_allclose(point["slope"], 2 * (point["w_old"] - 2), rtol=1e-6)
        np.testing.assert_allclose(point["w_new"], point["w_old"] - 0.1 * point["slope"], rtol=1e-6)
    for eta, distance in result["distances"].items():   # |w_t - w*| = |1 - 2 eta|^t |w_0 - w*|
        np.testing.assert_allclose(distance, abs(1 - 2 * eta) ** result["steps"] * 3, rtol=1e-4, atol=1e-6)
    assert result["distances"][1.05] > 3 > result["distances"][0.9]   # diverges; oscillates inwards
    assert "grows" in printed and "shrinks" in printed


def test_dying_relu_prints_the_dead_fraction_of_the_trained_params(tmp_path, capsys):
    result, printed = run("13_dying_relu", tmp_path, capsys)
    x = result["x"]
    for name, params in result["params"].items():
        hidden = numpy_hidden(params, x, NUMPY[name])
        expected = np.mean([np.mean(np.all(z <= 0, axis=0)) for z, _ in hidden])
        np.testing.assert_allclose(result["dead"][name], expected, atol=1e-6)
        assert f"{name} {expected:.3f}" in printed
    relu_zero = np.mean([np.mean(np.all(a == 0, axis=0)) for _, a in numpy_hidden(result["params"]["relu"], x, NUMPY["relu"])])
    np.testing.assert_allclose(result["dead"]["relu"], relu_zero, atol=1e-6)   # dead ReLU = always 0
    np.testing.assert_allclose(result["prelu_alpha"], [float(p["alpha"]) for p in result["params"]["prelu"][:-1]],
                               rtol=1e-6)


def test_zero_centred_stats_are_the_measured_ones_and_tanh_is_centred(tmp_path, capsys):
    result, printed = run("14_zero_centred_activations", tmp_path, capsys)
    for name, final in result["final"].items():
        hidden = numpy_hidden(final["params"], result["x"], NUMPY[name])
        np.testing.assert_allclose(final["mean"], [a.mean() for _, a in hidden], atol=1e-5)
        np.testing.assert_allclose(final["std"], [a.std() for _, a in hidden], atol=1e-5)
    assert min(result["final"]["relu"]["mean"]) > 0   # relu >= 0 and not all units off
    assert max(abs(m) for m in result["final"]["tanh"]["mean"]) < min(result["final"]["sigmoid"]["mean"])
    assert f"closest to zero-centred: {result['closest']}" in printed


def test_activation_cost_ratios_are_medians_over_relu(tmp_path, capsys):
    result, printed = run("15_activation_cost", tmp_path, capsys)
    rows = result["rows"]
    for group in result["ratios"]:
        in_group = {r["activation"]: r for r in rows if r["group"] == group}
        assert set(in_group) == {"relu", "sigmoid"}   # the tiny run's subset
        for r in in_group.values():
            np.testing.assert_allclose(r["ratio"], r["median_s"] / in_group["relu"]["median_s"], rtol=1e-9)
    assert len(result["ratios"]) == 3 and "final: in a whole training step" in printed


def test_two_class_softmax_net_predicts_what_the_sigmoid_net_does(tmp_path, capsys):
    result, printed = run("16_softmax_vs_sigmoid", tmp_path, capsys)
    assert result["identity_gap"] < 1e-6
    np.testing.assert_allclose(result["p_softmax"], result["p_sigmoid"], atol=1e-5)
    assert result["max_gap"] < 1e-5
    gap = float(re.search(r"largest gap over all steps ([0-9.e+-]+)", printed).group(1))
    np.testing.assert_allclose(gap, result["max_gap"], rtol=0.01)


def test_notes_adam_first_step_is_3_16_times_the_learning_rate(tmp_path, capsys):
    result, printed = run("17_adam_as_written", tmp_path, capsys)
    closed_form = 0.1 / np.sqrt(0.001)
    first = result["first_step"]
    np.testing.assert_allclose(first["Adam, fnn.optimizers.adam"], 1.0, rtol=2e-3)   # bias-corrected: lr
    np.testing.assert_allclose(first["Adam as the notes write it"], closed_form, rtol=2e-3)
    assert f"{closed_form:.3f}" in printed


def test_neuron_crosses_one_half_at_minus_b_over_w_with_slope_w_over_4(tmp_path, capsys):
    result, _ = run("18_weights_and_bias", tmp_path, capsys)
    for row in result["rows"]:
        np.testing.assert_allclose(row["crossing"], -row["b"] / row["w"], atol=1e-5)
        np.testing.assert_allclose(row["slope"], row["w"] / 4, rtol=1e-5)
    assert result["worst"] < 1e-4
