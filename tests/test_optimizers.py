"""fnn.optimizers against optax: same gradient stream in, same params/updates/state out.

Tolerances. fnn performs the same float32 operations as optax in the same order, so on
CPU the two agree bit for bit over 10,000 steps (measured deviation: 0). The bounds
below leave room only for a backend that fuses the two programs differently (say,
contracts ``a * b + c`` into an FMA in one of them), which changes one rounding, half an
ulp (6e-8 relative), per operation and step. After 1 and 100 steps we allow
``rtol=1e-6`` (some 10 ulps); over 10,000 steps such roundings accumulate in the params
(a reordered Adam moment measured 3e-6 relative), so ``rtol=2e-5``. A different
convention (eps inside or outside the root, no bias correction) is far outside these
bounds: ``test_comparison_detects_other_conventions`` shows it fails them.
"""

from __future__ import annotations

import doctest
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from absl.testing import parameterized
from hypothesis import given, settings
from hypothesis import strategies as st

from fnn import optimizers as fo
from fnn.optimizers import _adam, _adaptive, _base, _sgd

N_LONG = 10_000
CHECKPOINTS = {1: dict(rtol=1e-6, atol=1e-8), 100: dict(rtol=1e-6, atol=1e-8),
               N_LONG: dict(rtol=2e-5, atol=1e-7)}

# (id, fnn factory, optax factory); each factory takes the learning rate (float or schedule).
CONFIGS = [
    ("sgd", fo.sgd, optax.sgd),
    ("momentum", fo.momentum, lambda lr: optax.sgd(lr, momentum=0.9)),
    ("momentum-nesterov", functools.partial(fo.momentum, beta=0.5, nesterov=True),
     lambda lr: optax.sgd(lr, momentum=0.5, nesterov=True)),
    ("adagrad", fo.adagrad, optax.adagrad),
    ("adagrad-options", functools.partial(fo.adagrad, initial_accumulator_value=0.0, eps=1e-3),
     functools.partial(optax.adagrad, initial_accumulator_value=0.0, eps=1e-3)),
    ("rmsprop", fo.rmsprop, optax.rmsprop),
    ("rmsprop-options", functools.partial(fo.rmsprop, decay=0.99, eps=1e-6),
     functools.partial(optax.rmsprop, decay=0.99, eps=1e-6)),
    ("adam", fo.adam, optax.adam),
    ("adam-options", functools.partial(fo.adam, b1=0.8, b2=0.99, eps=1e-6),
     functools.partial(optax.adam, b1=0.8, b2=0.99, eps=1e-6)),
    ("adamw", fo.adamw, optax.adamw),
    ("adamw-options", functools.partial(fo.adamw, b1=0.5, b2=0.9, eps=1e-5, weight_decay=0.1),
     functools.partial(optax.adamw, b1=0.5, b2=0.9, eps=1e-5, weight_decay=0.1)),
]
CONFIG_IDS = [c[0] for c in CONFIGS]
# One per optimizer and option, for the cheaper property tests.
BASIC = [c for c in CONFIGS if "options" not in c[0]]
BASIC_IDS = [c[0] for c in BASIC]
SCHEDULE = optax.exponential_decay(3e-3, transition_steps=500, decay_rate=0.5)


def nested_params(dtype=jnp.float32):
    """A nested pytree (dict, list, tuple) with leaves of several shapes, a scalar included."""
    k = jax.random.split(jax.random.PRNGKey(0), 5)
    return {
        "dense": {"w": jax.random.normal(k[0], (3, 4), dtype), "b": jnp.zeros((4,), dtype)},
        "list": [jax.random.normal(k[1], (2, 2, 2), dtype), jnp.asarray(0.5, dtype)],
        "tuple": (jax.random.uniform(k[2], (5,), dtype, -1.0, 1.0),),
    }


def random_grad_stream(params, n):
    """n steps of gradients: normal noise with a per-leaf scale from 1e-3 to 10."""
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(1), len(leaves))
    scales = np.logspace(-3, 1, len(leaves))
    return treedef.unflatten([float(s) * jax.random.normal(k, (n,) + x.shape, x.dtype)
                              for k, s, x in zip(keys, scales, leaves)])


# A tiny tanh MLP on fixed data, written inline so the test depends on nothing but jnp.
_X = jax.random.normal(jax.random.PRNGKey(2), (64, 4))
_Y = jnp.argmax(_X @ jax.random.normal(jax.random.PRNGKey(3), (4, 3)), axis=-1)


def mlp_params():
    k1, k2 = jax.random.split(jax.random.PRNGKey(4))
    return {"hidden": {"w": 0.5 * jax.random.normal(k1, (4, 16)), "b": jnp.zeros(16)},
            "out": {"w": 0.5 * jax.random.normal(k2, (16, 3)), "b": jnp.zeros(3)}}


def mlp_loss(params):
    h = jnp.tanh(_X @ params["hidden"]["w"] + params["hidden"]["b"])
    logits = h @ params["out"]["w"] + params["out"]["b"]
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), _Y[:, None], axis=1))


@functools.partial(jax.jit, static_argnums=0)
def _advance(pairs, carry, grads_xs, start, stop):
    """Steps ``start..stop`` of every (fnn, optax) pair; carry holds (params, state, updates).

    ``grads_xs`` is a stacked gradient stream, or None for gradients of ``mlp_loss``
    taken at each side's own params (so a deviation would feed back). ``start`` and
    ``stop`` are traced: one compilation serves every segment.
    """

    def body(i, carry):
        new = []
        for pair, sides in zip(pairs, carry):
            out = []
            for opt, (p, s, _) in zip(pair, sides):
                g = (jax.grad(mlp_loss)(p) if grads_xs is None
                     else jax.tree.map(lambda x: x[i], grads_xs))
                u, s = opt.update(g, s, p)
                out.append((fo.apply_updates(p, u), s, u))
            new.append(tuple(out))
        return tuple(new)

    return jax.lax.fori_loop(start, stop, body, carry)


def run_pairs(configs, lr, params, grads_xs, checkpoints):
    """{config id: {n: ((p, state, u) of fnn, (p, state, u) of optax) after n steps}}.

    ``lr`` is one rate or schedule for all, or a dict of them by config id. All configs
    step side by side in one compiled program.
    """
    lr_of = lr.get if isinstance(lr, dict) else (lambda name: lr)
    pairs = tuple((make_fnn(lr_of(name)), make_optax(lr_of(name)))
                  for name, make_fnn, make_optax in configs)
    zeros = jax.tree.map(jnp.zeros_like, params)
    carry = tuple(tuple((params, opt.init(params), zeros) for opt in pair) for pair in pairs)
    snapshots, start = {}, 0
    for stop in checkpoints:
        carry = _advance(pairs, carry, grads_xs, start, stop)
        snapshots[stop], start = carry, stop
    return {name: {n: snapshots[n][i] for n in checkpoints}
            for i, (name, *_) in enumerate(configs)}


@functools.cache
def long_stream():
    return random_grad_stream(nested_params(), N_LONG)


@functools.cache
def long_runs(stream: str, lr_kind: str):
    """10,000 steps of every config on random gradients (constant rate or schedule) or
    on MLP gradients (a constant rate for the defaults, a schedule for the options)."""
    if stream == "random":
        lr = 3e-3 if lr_kind == "constant" else SCHEDULE
        return run_pairs(CONFIGS, lr, nested_params(), long_stream(), CHECKPOINTS)
    rates = {name: SCHEDULE if name.endswith("options") else 1e-2 for name in CONFIG_IDS}
    return run_pairs(CONFIGS, rates, mlp_params(), None, CHECKPOINTS)


@functools.cache
def short_runs(dtype_name: str):
    """20 steps of the basic configs with params and grads in a non-default dtype."""
    dtype = jnp.dtype(dtype_name)
    with jax.enable_x64(dtype == jnp.float64):
        params = nested_params(dtype)
        return run_pairs(BASIC, SCHEDULE, params, random_grad_stream(params, 20), (20,))


def optax_fields(state) -> dict:
    """Field name -> list of values, gathered from optax's nested chain state."""
    fields = {}
    if hasattr(state, "_fields"):
        for name in state._fields:
            fields.setdefault(name, []).append(getattr(state, name))
    elif isinstance(state, (tuple, list)):
        for sub in state:
            for name, values in optax_fields(sub).items():
                fields.setdefault(name, []).extend(values)
    return fields


def assert_same_as_optax(snapshot, n_steps, **tol):
    """Compare params, updates and every state field of one snapshot."""
    (pf, sf, uf), (po, so, uo) = snapshot
    chex.assert_trees_all_close(pf, po, **tol)
    chex.assert_trees_all_close(uf, uo, **tol)
    assert_state_matches(sf, so, **tol)
    assert int(sf.count) == n_steps


def assert_state_matches(fnn_state, optax_state, **tol):
    """Every field of optax's (chain) state has an fnn field of that name and value."""
    reference = optax_fields(optax_state)
    assert set(reference) <= set(fnn_state._fields), (fnn_state._fields, set(reference))
    for name, values in reference.items():
        for value in values:
            chex.assert_trees_all_equal_dtypes(getattr(fnn_state, name), value)
            chex.assert_trees_all_close(getattr(fnn_state, name), value, **tol)


# --- equality with optax -------------------------------------------------------------


@pytest.mark.parametrize("name", CONFIG_IDS)
@pytest.mark.parametrize("lr_kind", ["constant", "schedule"])
def test_optimizer_matches_optax_on_random_gradients(name, lr_kind):
    for n_steps, snapshot in long_runs("random", lr_kind)[name].items():
        assert_same_as_optax(snapshot, n_steps, **CHECKPOINTS[n_steps])


@pytest.mark.parametrize("name", CONFIG_IDS)
def test_optimizer_matches_optax_on_mlp_gradients(name):
    runs = long_runs("mlp", "mixed")[name]
    for n_steps, snapshot in runs.items():
        assert_same_as_optax(snapshot, n_steps, **CHECKPOINTS[n_steps])
    assert mlp_loss(runs[N_LONG][0][0]) < mlp_loss(mlp_params())  # a real training run


def _other_conventions(lr):
    """fnn-shaped optimizers following other libraries' or the notes' conventions."""
    b1, b2, eps, decay = 0.9, 0.999, 1e-8, 0.9

    def adam_like(eps_inside_root, bias_correction):
        def update(g, state, params=None):
            count = state.count + 1
            mu = jax.tree.map(lambda g_, m: (1 - b1) * g_ + b1 * m, g, state.mu)
            nu = jax.tree.map(lambda g_, v: (1 - b2) * (g_ * g_) + b2 * v, g, state.nu)
            c1, c2 = (1 - b1 ** count, 1 - b2 ** count) if bias_correction else (1.0, 1.0)
            root = ((lambda v: jnp.sqrt(v / c2 + eps)) if eps_inside_root
                    else (lambda v: jnp.sqrt(v / c2) + eps))
            u = jax.tree.map(lambda m, v: -lr * (m / c1) / root(v), mu, nu)
            return u, fo.AdamState(count=count, mu=mu, nu=nu)

        return fo.GradientTransformation(fo.adam(lr).init, update)

    def rmsprop_eps_outside_root(g, state, params=None):
        nu = jax.tree.map(lambda g_, v: (1 - decay) * (g_ * g_) + decay * v, g, state.nu)
        u = jax.tree.map(lambda g_, v: -lr * g_ / (jnp.sqrt(v) + eps), g, nu)
        return u, fo.RmspropState(count=state.count + 1, nu=nu)

    return [
        ("adam-eps-inside-root", lambda _: adam_like(True, True), optax.adam),
        ("adam-no-bias-correction", lambda _: adam_like(False, False), optax.adam),
        ("rmsprop-eps-outside-root", lambda _: fo.GradientTransformation(
            fo.rmsprop(lr).init, rmsprop_eps_outside_root), optax.rmsprop),
    ]


def test_comparison_detects_other_conventions():
    params = nested_params()
    variants = _other_conventions(3e-3)
    stream = jax.tree.map(lambda x: x[:100], long_stream())
    runs = run_pairs(variants, 3e-3, params, stream, (1, 100))
    for name, *_ in variants:
        with pytest.raises(AssertionError):
            for n_steps, snapshot in runs[name].items():
                assert_same_as_optax(snapshot, n_steps, **CHECKPOINTS[n_steps])


# --- closed forms ----------------------------------------------------------------------

# Fixed length: every example reuses the compiled ops.
GRADS = st.lists(st.floats(0.01, 100.0) | st.floats(-100.0, -0.01), min_size=4, max_size=4)


@settings(max_examples=20, deadline=None)
@given(g=GRADS, lr=st.floats(1e-4, 1.0))
def test_adam_first_update_is_minus_lr_sign_grad(g, lr):
    g = jnp.asarray(g, jnp.float32)
    updates, _ = fo.adam(lr).update(g, fo.adam(lr).init(g))
    # In exact arithmetic m_hat = g and v_hat = g^2, so u = -lr g / (|g| + eps), within
    # eps/|g| <= 1e-6 of -lr sign(g). In float32, 1 - b2 = 1 - 0.999 cancels: its rounding
    # error (ulp(1) / 1e-3 = 6e-5 relative, halved by the root) dominates the bound.
    chex.assert_trees_all_close(updates, -lr * jnp.sign(g), rtol=4e-5)


@settings(max_examples=20, deadline=None)
@given(g=GRADS, lr=st.floats(1e-4, 1.0))
def test_rmsprop_first_update_closed_form(g, lr):
    g = jnp.asarray(g, jnp.float32)
    updates, state = fo.rmsprop(lr).update(g, fo.rmsprop(lr).init(g))
    chex.assert_trees_all_close(state.nu, 0.1 * g ** 2, rtol=1e-6)
    chex.assert_trees_all_close(updates, -lr * g / jnp.sqrt(0.1 * g ** 2 + 1e-8), rtol=2e-6)
    # Without eps: -lr sqrt(10) sign(g), off by eps / (2 * 0.1 g^2) <= 5e-4 for |g| >= 0.01.
    chex.assert_trees_all_close(updates, -lr * np.sqrt(10.0) * jnp.sign(g), rtol=5e-4)


def test_adagrad_first_update_closed_form():
    g = jnp.array([3.0, -0.5, 1e-3])
    updates, state = fo.adagrad(0.1).update(g, fo.adagrad(0.1).init(g))
    chex.assert_trees_all_close(state.sum_of_squares, g ** 2 + 0.1, rtol=1e-6)
    chex.assert_trees_all_close(updates, -0.1 * g / jnp.sqrt(g ** 2 + 0.1 + 1e-7), rtol=1e-6)


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_two_steps_closed_form(nesterov):
    g1, g2 = jnp.array([1.0, -2.0]), jnp.array([0.5, 4.0])
    opt = fo.momentum(0.1, beta=0.9, nesterov=nesterov)
    u1, state = opt.update(g1, opt.init(g1))
    u2, state = opt.update(g2, state)
    trace2 = g2 + 0.9 * g1
    chex.assert_trees_all_close(state.trace, trace2)
    expected2 = -0.1 * (g2 + 0.9 * trace2) if nesterov else -0.1 * trace2
    chex.assert_trees_all_close((u1, u2), (-0.1 * (1.9 if nesterov else 1.0) * g1, expected2))


def test_sgd_update_is_minus_lr_times_grad():
    g = {"a": jnp.array([1.0, -3.0]), "b": jnp.array(2.0)}
    updates, state = fo.sgd(0.5).update(g, fo.sgd(0.5).init(g))
    chex.assert_trees_all_close(updates, {"a": jnp.array([-0.5, 1.5]), "b": jnp.array(-1.0)})
    assert int(state.count) == 1


def test_schedule_first_update_uses_schedule_at_zero():
    opt = fo.sgd(lambda count: 0.1 * (count + 1))
    g = jnp.array([1.0, -1.0])
    state = opt.init(g)
    u1, state = opt.update(g, state)
    u2, state = opt.update(g, state)
    chex.assert_trees_all_close((u1, u2), (-0.1 * g, -0.2 * g))


def test_count_saturates_at_int32_max():
    opt = fo.adam(1e-3)
    state = opt.init(jnp.zeros(2))._replace(count=jnp.array(jnp.iinfo(jnp.int32).max, jnp.int32))
    _, state = opt.update(jnp.ones(2), state)
    assert int(state.count) == jnp.iinfo(jnp.int32).max


# --- zero gradients ----------------------------------------------------------------------


@settings(max_examples=10, deadline=None)
@given(values=st.lists(st.floats(-10, 10, width=32, allow_subnormal=False), min_size=4, max_size=4),
       steps=st.integers(1, 4))
@pytest.mark.parametrize("name,make_fnn,make_optax", [c for c in BASIC if c[0] != "adamw"],
                         ids=[i for i in BASIC_IDS if i != "adamw"])
def test_optimizer_zero_grads_leave_params_unchanged(name, make_fnn, make_optax, values, steps):
    # Subnormal params are excluded: XLA on CPU flushes them to zero in any addition.
    params = {"w": jnp.asarray(values, jnp.float32)}
    opt = make_fnn(0.1)
    state = opt.init(params)
    new = params
    for _ in range(steps):
        updates, state = opt.update(jax.tree.map(jnp.zeros_like, params), state, new)
        new = fo.apply_updates(new, updates)
    chex.assert_trees_all_equal(new, params)


def test_adamw_zero_grads_decay_weights():
    params = {"w": jnp.array([2.0, -4.0, 0.0])}
    opt = fo.adamw(0.1, weight_decay=0.5)
    state = opt.init(params)
    new = params
    for _ in range(3):
        updates, state = opt.update({"w": jnp.zeros(3)}, state, new)
        new = fo.apply_updates(new, updates)
    chex.assert_trees_all_close(new["w"], params["w"] * (1 - 0.1 * 0.5) ** 3, rtol=1e-6)


# --- jit, vmap, tracing -------------------------------------------------------------------


@pytest.mark.parametrize("name,make_fnn,make_optax", BASIC, ids=BASIC_IDS)
def test_optimizer_update_no_retrace_on_second_call(name, make_fnn, make_optax):
    chex.clear_trace_counter()  # counts are per code location, shared by momentum's variants
    opt = make_fnn(SCHEDULE)
    update = jax.jit(chex.assert_max_traces(opt.update, n=1))
    params = nested_params()
    grads = jax.tree.map(jnp.ones_like, params)
    state = opt.init(params)
    for _ in range(3):
        _, state = update(grads, state, params)
    assert int(state.count) == 3


class OptimizerVariantsTest(chex.TestCase):
    """Each update, with and without jit, against optax's (eager) update."""

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(*BASIC)
    def test_update_matches_optax(self, make_fnn, make_optax):
        fnn_opt, optax_opt = make_fnn(SCHEDULE), make_optax(SCHEDULE)
        update = self.variant(fnn_opt.update)
        params = nested_params()
        stream = random_grad_stream(params, 3)
        sf, so = fnn_opt.init(params), optax_opt.init(params)
        for i in range(3):
            g = jax.tree.map(lambda x: x[i], stream)
            uf, sf = update(g, sf, params)
            uo, so = optax_opt.update(g, so, params)
            chex.assert_trees_all_close(uf, uo, rtol=1e-6, atol=1e-9)
            assert_state_matches(sf, so, rtol=1e-6, atol=1e-9)


RATES = (1e-3, 3e-3, 3e-2)  # 3e-3: the rate of long_runs("random", "constant")


@functools.cache
def sweep_runs():
    """100 steps of every basic config built inside ``vmap`` over traced rates."""
    params = nested_params()
    stream = jax.tree.map(lambda x: x[:100], long_stream())

    def train(opt):
        def step(carry, g):
            p, s = carry
            u, s = opt.update(g, s, p)
            return (fo.apply_updates(p, u), s), None

        return jax.lax.scan(step, (params, opt.init(params)), stream)[0]

    def sweep(lr):  # lr is a tracer here: no check may branch on it
        return {name: (train(make_fnn(lr)), train(make_optax(lr)))
                for name, make_fnn, make_optax in BASIC}

    return jax.jit(jax.vmap(sweep))(jnp.asarray(RATES))


@pytest.mark.parametrize("name", BASIC_IDS)
def test_optimizer_constructed_inside_vmap_with_traced_learning_rate(name):
    swept = sweep_runs()[name]
    # Elementwise float32 arithmetic on the same values: batching changes no rounding.
    for i in range(len(RATES)):
        (p_ours, s_ours), (p_optax, s_optax) = jax.tree.map(lambda a: a[i], swept)
        chex.assert_trees_all_close(p_ours, p_optax, rtol=1e-6, atol=1e-9)
        assert_state_matches(s_ours, s_optax, rtol=1e-6, atol=1e-9)
    (pf, sf, _), _ = long_runs("random", "constant")[name][100]
    chex.assert_trees_all_close(jax.tree.map(lambda a: a[1], swept[0]), (pf, sf),
                                rtol=1e-6, atol=1e-9)
    assert not np.allclose(swept[0][0]["dense"]["w"][0], swept[0][0]["dense"]["w"][2])


# --- interop with optax ---------------------------------------------------------------------


CLIP = optax.clip_by_global_norm(0.1)
CHAINED = [(name, lambda lr, f=make_fnn: optax.chain(CLIP, f(lr)),
            lambda lr, o=make_optax: optax.chain(CLIP, o(lr)))
           for name, make_fnn, make_optax in BASIC]


@functools.cache
def chain_runs():
    return run_pairs(CHAINED, 1e-2, mlp_params(), None, (50,))


@pytest.mark.parametrize("name", BASIC_IDS)
def test_fnn_optimizer_inside_optax_chain(name):
    assert optax.tree.norm(jax.grad(mlp_loss)(mlp_params())) > 0.1  # the clip acts
    (pf, (_, sf), uf), (po, (_, so), uo) = chain_runs()[name][50]
    chex.assert_trees_all_close((pf, uf), (po, uo), rtol=1e-6, atol=1e-9)
    assert_state_matches(sf, so, rtol=1e-6, atol=1e-9)
    assert int(sf.count) == 50


def _train(opt, params, n=3):
    """The loop fnn.training runs: init, update(grads, state, params), apply_updates."""
    state = opt.init(params)
    for _ in range(n):
        updates, state = opt.update(jax.grad(mlp_loss)(params), state, params)
        params = fo.apply_updates(params, updates)
    return params


@pytest.mark.parametrize("name,make_fnn,make_optax", BASIC, ids=BASIC_IDS)
def test_optax_optimizer_where_fnn_takes_one(name, make_fnn, make_optax):
    params = mlp_params()
    theirs = _train(make_optax(1e-2), params)
    chex.assert_trees_all_close(theirs, _train(make_fnn(1e-2), params), rtol=1e-6, atol=1e-9)
    assert mlp_loss(theirs) < mlp_loss(params)


@pytest.mark.parametrize("name,make_fnn,make_optax", BASIC, ids=BASIC_IDS)
def test_fnn_optimizer_inside_optax_masked(name, make_fnn, make_optax):
    params = {"w": jnp.array([1.0, -2.0, 3.0]), "b": jnp.ones(2)}
    grads = {"w": jnp.array([0.5, 0.1, -2.0]), "b": jnp.full(2, 7.0)}
    mask = {"w": True, "b": False}  # masked-out leaves reach the optimizer as MaskedNode
    ours, theirs = optax.masked(make_fnn(0.5), mask), optax.masked(make_optax(0.5), mask)
    updates, _ = ours.update(grads, ours.init(params), params)
    expected, _ = theirs.update(grads, theirs.init(params), params)
    chex.assert_trees_all_close(updates, expected, rtol=1e-6)
    chex.assert_trees_all_equal(updates["b"], grads["b"])


# --- dtypes ---------------------------------------------------------------------------------


# Same ops in the same order in the same dtype: equal to the last bit on CPU. The bounds
# allow one rounding of slack: 2**-8 relative for bfloat16; for float64 1e-14 (some 50
# ulps, against ~1e-7 if anything ran in float32). float16 is left out: eps=1e-8 rounds
# to 0 there and RMSProp/Adam give NaN in optax and fnn alike.
DTYPE_TOL = {"bfloat16": dict(rtol=2 ** -7, atol=1e-6), "float64": dict(rtol=1e-14, atol=1e-18)}


@pytest.mark.parametrize("dtype", list(DTYPE_TOL))
@pytest.mark.parametrize("name", BASIC_IDS)
def test_optimizer_dtype_matches_optax(name, dtype):
    (pf, sf, uf), (po, so, uo) = short_runs(dtype)[name][20]
    chex.assert_tree_all_finite((pf, sf, uf))
    state_trees = [getattr(sf, f) for f in sf._fields if f != "count"]
    for tree in [pf, uf] + state_trees:
        assert {x.dtype for x in jax.tree.leaves(tree)} == {jnp.dtype(dtype)}
    assert sf.count.dtype == jnp.int32
    chex.assert_trees_all_close(pf, po, **DTYPE_TOL[dtype])
    chex.assert_trees_all_close(uf, uo, **DTYPE_TOL[dtype])
    assert_state_matches(sf, so, **DTYPE_TOL[dtype])


@pytest.mark.parametrize("make_fnn", [fo.adam, fo.adamw], ids=["adam", "adamw"])
def test_adam_bfloat16_bias_correction_in_float32(make_fnn):
    # 0.999 rounds to 1.0 in bfloat16: 1 - b2**t computed there would be 0 and v_hat inf.
    params = jnp.zeros(3, jnp.bfloat16)
    g = jnp.array([2.0, -0.5, 1e-2], jnp.bfloat16)
    opt = make_fnn(0.1)
    updates, _ = opt.update(g, opt.init(params), params)
    assert updates.dtype == jnp.bfloat16
    chex.assert_trees_all_close(updates.astype(jnp.float32), -0.1 * jnp.sign(g.astype(jnp.float32)),
                                rtol=2 ** -7)


def test_apply_updates_casts_back_to_param_dtype():
    params = {"a": jnp.array([1.0, 2.0], jnp.bfloat16), "b": jnp.array([1.0]), "c": None}
    updates = {"a": jnp.array([1e-3, -0.3], jnp.float32), "b": jnp.array([0.5]), "c": None}
    new = fo.apply_updates(params, updates)
    assert new["a"].dtype == jnp.bfloat16 and new["b"].dtype == jnp.float32 and new["c"] is None
    chex.assert_trees_all_equal(new, optax.apply_updates(params, updates))


# --- validation ------------------------------------------------------------------------------

INVALID = [
    (fo.sgd, dict(learning_rate=-1.0), "learning_rate", ValueError),
    (fo.sgd, dict(learning_rate=float("nan")), "learning_rate", ValueError),
    (fo.sgd, dict(learning_rate="0.1"), "learning_rate", TypeError),
    (fo.sgd, dict(learning_rate=jnp.array(-0.1)), "learning_rate", ValueError),
    (fo.momentum, dict(learning_rate=0.1, beta=1.0), "beta", ValueError),
    (fo.momentum, dict(learning_rate=0.1, beta=-0.1), "beta", ValueError),
    (fo.momentum, dict(learning_rate=0.1, nesterov=1), "nesterov", TypeError),
    (fo.adagrad, dict(learning_rate=-0.1), "learning_rate", ValueError),
    (fo.adagrad, dict(learning_rate=0.1, initial_accumulator_value=-0.1),
     "initial_accumulator_value", ValueError),
    (fo.adagrad, dict(learning_rate=0.1, eps=0.0), "eps", ValueError),
    (fo.rmsprop, dict(learning_rate=-0.1), "learning_rate", ValueError),
    (fo.rmsprop, dict(learning_rate=0.1, decay=1.0), "decay", ValueError),
    (fo.rmsprop, dict(learning_rate=0.1, eps=-1e-8), "eps", ValueError),
    (fo.adam, dict(learning_rate=-1e-3), "learning_rate", ValueError),
    (fo.adam, dict(learning_rate=1e-3, b1=1.0), "b1", ValueError),
    (fo.adam, dict(learning_rate=1e-3, b2=1.5), "b2", ValueError),
    (fo.adam, dict(learning_rate=1e-3, eps=0.0), "eps", ValueError),
    (fo.adam, dict(learning_rate=1e-3, b1=lambda count: 0.9), "b1", TypeError),
    (fo.adamw, dict(learning_rate=-1e-3), "learning_rate", ValueError),
    (fo.adamw, dict(learning_rate=1e-3, b2=-0.5), "b2", ValueError),
    (fo.adamw, dict(learning_rate=1e-3, eps=-1.0), "eps", ValueError),
    (fo.adamw, dict(learning_rate=1e-3, weight_decay=-1e-4), "weight_decay", ValueError),
]


@pytest.mark.parametrize("factory,kwargs,arg,exc", INVALID,
                         ids=[f"{f.__name__}-{a}-{i}" for i, (f, _, a, _) in enumerate(INVALID)])
def test_optimizer_rejects_invalid_hyperparameter(factory, kwargs, arg, exc):
    with pytest.raises(exc, match=rf"^{factory.__name__}: {arg} must"):
        factory(**kwargs)


@pytest.mark.parametrize("name,make_fnn,make_optax", BASIC, ids=BASIC_IDS)
def test_optimizer_accepts_traced_hyperparameters_unchecked(name, make_fnn, make_optax):
    params = jnp.ones(2)
    # A traced value cannot be inspected; construction inside jit must not raise.
    run = jax.jit(lambda lr: make_fnn(lr).update(params, make_fnn(lr).init(params), params)[0])
    chex.assert_trees_all_equal_shapes(run(jnp.float32(-1.0)), params)


@pytest.mark.parametrize("name,make_fnn,make_optax", BASIC, ids=BASIC_IDS)
def test_optimizer_init_rejects_integer_params(name, make_fnn, make_optax):
    with pytest.raises(TypeError, match=rf"^{name.split('-')[0]}: params must"):
        make_fnn(0.1).init({"w": jnp.ones(3, jnp.int32)})


@pytest.mark.parametrize("name,make_fnn,make_optax",
                         BASIC[1:], ids=BASIC_IDS[1:])  # sgd keeps no per-leaf state
def test_optimizer_update_rejects_grads_of_another_structure(name, make_fnn, make_optax):
    opt = make_fnn(0.1)
    state = opt.init({"w": jnp.ones(3)})
    with pytest.raises(ValueError, match=rf"^{name.split('-')[0]}: grads must"):
        opt.update({"v": jnp.ones(3)}, state, {"w": jnp.ones(3)})


def test_adamw_update_requires_params():
    opt = fo.adamw(1e-3)
    with pytest.raises(ValueError, match=r"^adamw: params must"):
        opt.update(jnp.ones(2), opt.init(jnp.ones(2)))
    with pytest.raises(ValueError, match=r"^adamw: params must"):
        opt.update(jnp.ones(2), opt.init(jnp.ones(2)), {"w": jnp.ones(2)})


@pytest.mark.parametrize("module", [_base, _sgd, _adaptive, _adam],
                         ids=lambda m: m.__name__.rsplit(".", 1)[1])
def test_docstring_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
