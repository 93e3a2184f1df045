"""fnn playground's HTTP API, in-process: every endpoint, bad input, the origin check, two pages."""

import http.client
import json
import signal
import subprocess
import sys
import threading

import jax
import numpy as np
import pytest

import fnn
from fnn.playground import _code, _config, _engine, make_server


@pytest.fixture(scope="module")
def server():
    server = make_server(0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def request(server, method, path, body=None, headers=None, raw=None):
    port = server.server_address[1]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    sent = {"Host": f"127.0.0.1:{port}"}
    if body is not None or raw is not None:
        sent["Content-Type"] = "application/json"
    sent.update(headers or {})
    connection.request(method, path, body=raw if raw is not None else
                       (None if body is None else json.dumps(body)), headers=sent)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    kind = response.getheader("Content-Type", "")
    return response.status, (json.loads(data) if kind.startswith("application/json") else data)


def new_run(server, **config):
    status, reply = request(server, "POST", "/api/run", {"config": config})
    assert status == 200, reply
    return reply


@pytest.mark.parametrize("path, marker", [("/", b"<canvas id=\"output\""), ("/app.js", b"/api/step"),
                                          ("/style.css", b"#controls")])
def test_playground_serves_the_static_page(server, path, marker):
    status, body = request(server, "GET", path)
    assert status == 200 and marker in body


def test_playground_options_list_choices_and_limits(server):
    status, reply = request(server, "GET", "/api/options")
    assert status == 200
    assert reply["choices"]["data"] == ["xor", "circles", "moons", "blobs", "spirals"]
    assert reply["limits"]["neurons"] == [1, 32] and reply["defaults"]["hidden"] == [8, 8]
    assert reply["limits"]["dropout"] == [0.0, 0.9] and reply["defaults"]["dropout"] == 0.0


def test_playground_run_returns_the_first_picture_at_epoch_zero(server):
    reply = new_run(server)
    assert reply["epoch"] == 0 and reply["train_loss"] == []
    assert len(np.frombuffer(__import__("base64").b64decode(reply["output"]), np.uint8)) == 64 * 64
    assert len(reply["neurons"]) == 16 and len(reply["grad_norms"]) == 3
    assert len(reply["train"]["x"]) + len(reply["test"]["x"]) == 200


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_playground_step_equals_fnn_fit(server, dropout):
    rid = new_run(server, epochs_per_update=4, learning_rate=0.05, dropout=dropout)["id"]
    losses = []
    for _ in range(3):
        status, reply = request(server, "POST", "/api/step", {"id": rid})
        assert status == 200
        losses += reply["test_loss"]
    assert reply["epoch"] == 12 and len(losses) == 12
    config = _config.parse({"learning_rate": 0.05})
    data = _engine.load_data(config)
    _, k_init, k_order = _engine.keys(0)
    # With dropout, fit trains the general model (the masks of its step keys) and
    # evaluates it with train=False, as the page does.
    model = fnn.mlp([8, 8, 2], "tanh", dropout=dropout)
    params, state = model.init(k_init, (2,)) if dropout else (model.init(k_init, (2,)), None)
    result = fnn.fit(model, params, fnn.optimizers.adam(0.05), data.x_train, data.y_train, state=state,
                     epochs=12, batch_size=10, key=k_order, eval_data=(data.x_test, data.y_test), progress=False)
    # The page's learning rate is a traced argument (no recompile when it changes), fit's a
    # constant XLA may fold: equal to float32 rounding, bit for bit at some rates (0.03).
    np.testing.assert_allclose(np.float32(losses), np.asarray(result.history["eval_loss"]), rtol=2e-5)


def test_playground_dropout_views_use_the_whole_network():
    # Inference mode (train=False): the plain MLP's forward stage on the trained params,
    # so the maps are not one random thinned network's.
    run, views = _engine.advance(_engine.start(_config.parse({"dropout": 0.5, "epochs_per_update": 2})))
    t = np.linspace(-_engine.DOMAIN, _engine.DOMAIN, _engine.GRID)
    xx, yy = np.meshgrid(t, -t)
    logits = fnn.mlp([8, 8, 2], "tanh").apply(run.params, np.stack([xx.ravel(), yy.ravel()], -1))
    np.testing.assert_allclose(views["output"], jax.nn.softmax(logits)[:, 1], atol=1e-6)
    assert views["neurons"].shape == (16, _engine.NEURON_GRID ** 2)
    assert views["grad_norms"].shape == (3,) and np.all(views["grad_norms"] > 0)


def test_playground_new_dropout_rate_does_not_recompile(server):
    rid = new_run(server, dropout=0.1)["id"]
    request(server, "POST", "/api/step", {"id": rid})
    compiled = _engine._network_update._cache_size()
    rid = new_run(server, dropout=0.6)["id"]
    status, reply = request(server, "POST", "/api/step", {"id": rid})
    assert status == 200 and reply["epoch"] == 5
    assert _engine._network_update._cache_size() == compiled


def test_playground_code_runs_and_prints_the_same_loss(server, capsys):
    # In-process (the browser test runs the page's code in a subprocess); the default
    # network, so the page's program is the one already compiled.
    rid = new_run(server, weight_decay=0.001, epochs_per_update=3)["id"]
    request(server, "POST", "/api/step", {"id": rid})
    status, reply = request(server, "POST", "/api/code", {"id": rid})
    assert status == 200 and "optax.add_decayed_weights(0.001)" in reply["code"]
    exec(compile(reply["code"], "shown-code", "exec"), {})
    printed = capsys.readouterr().out.split()
    assert printed[:2] == ["epoch", "3"]
    assert float(printed[-1]) == pytest.approx(reply["test_loss"], rel=2e-5)


def test_playground_perceptron_never_solves_xor(server):
    rid = new_run(server, model="perceptron", hidden=[], activation="step", learning_rate=1.0,
                  epochs_per_update=50)["id"]
    status, reply = request(server, "POST", "/api/step", {"id": rid})
    assert status == 200 and reply["epoch"] == 50 and not reply["converged"]
    assert min(reply["train_loss"]) > 0 and reply["grad_norms"] == []


def test_playground_two_pages_train_independently(server):
    a, b = new_run(server)["id"], new_run(server, data="moons")["id"]
    replies = {}

    def steps(rid):
        replies[rid] = [request(server, "POST", "/api/step", {"id": rid})[1]["epoch"] for _ in range(3)]

    threads = [threading.Thread(target=steps, args=(rid,)) for rid in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert replies == {a: [5, 10, 15], b: [5, 10, 15]}


def test_playground_close_forgets_the_run(server):
    rid = new_run(server)["id"]
    assert request(server, "POST", "/api/close", {"id": rid}) == (200, {"closed": True})
    status, reply = request(server, "POST", "/api/step", {"id": rid})
    assert status == 404 and "id must name an open run" in reply["error"]


@pytest.mark.parametrize("config, message", [
    ({"points": 5}, "playground: points must be an integer in [20, 2000]; got 5"),
    ({"hidden": [8] * 9}, "playground: hidden must be a list of 0 to 8 layer sizes"),
    ({"hidden": [64]}, "playground: neurons must be an integer in [1, 32]; got 64"),
    ({"learning_rate": 0}, "playground: learning_rate must be a number in [1e-06, 10.0]; got 0"),
    ({"noise": "lots"}, "playground: noise must be a number in [0.0, 2.0]; got 'lots'"),
    ({"dropout": 0.95}, "playground: dropout must be a number in [0.0, 0.9]; got 0.95"),
    ({"dropout": -0.1}, "playground: dropout must be a number in [0.0, 0.9]; got -0.1"),
    ({"activation": "softmax"}, "playground: activation must be one of tanh, sigmoid"),
    ({"data": "../../etc/passwd"}, "playground: data must be one of xor, circles"),
    ({"epochs_per_update": True}, "playground: epochs_per_update must be an integer in [1, 100]"),
    ({"path": "/tmp"}, "playground: config must hold only data, points"),
])
def test_playground_bad_config_is_refused_with_its_name(server, config, message):
    status, reply = request(server, "POST", "/api/run", {"config": config})
    assert status == 400 and message in reply["error"]


@pytest.mark.parametrize("method, path, kwargs, status, message", [
    ("POST", "/api/step", {"raw": b"{not json"}, 400, "body must be JSON"),
    ("POST", "/api/step", {"raw": b"[1, 2]"}, 400, "body must be a JSON object; got list"),
    ("POST", "/api/step", {"raw": b"{}", "headers": {"Content-Type": "text/plain"}}, 400,
     "Content-Type must be application/json"),
    ("POST", "/api/step", {"raw": b"x" * 70000}, 400, "body must be at most 65536 bytes"),
    ("POST", "/api/step", {"body": {"id": 3}}, 404, "id must name an open run"),
    ("POST", "/api/nope", {"body": {}}, 404, "path must be one of /api/run"),
    ("GET", "/../../etc/passwd", {}, 404, "path must be one of the page's"),
])
def test_playground_bad_request_is_refused_and_the_server_survives(server, method, path, kwargs, status,
                                                                   message):
    got, reply = request(server, method, path, **kwargs)
    assert got == status and message in reply["error"]
    assert request(server, "GET", "/api/options")[0] == 200


@pytest.mark.parametrize("headers", [{"Host": "evil.example:80"}, {"Origin": "http://evil.example"},
                                     {"Origin": "null"}])
def test_playground_foreign_host_or_origin_is_refused(server, headers):
    status, reply = request(server, "POST", "/api/run", {"config": {}}, headers=headers)
    assert status == 403 and "Host and Origin must be this server" in reply["error"]


def test_playground_own_origin_and_localhost_are_accepted(server):
    port = server.server_address[1]
    assert request(server, "GET", "/api/options",
                   headers={"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"})[0] == 200


def test_playground_binds_loopback_only(server):
    assert server.server_address[0] == "127.0.0.1"


def test_playground_code_script_matches_the_perceptron(tmp_path):
    config = _config.parse({"model": "perceptron", "hidden": [], "learning_rate": 1.0, "data": "blobs"})
    code = _code.script(config, 4)
    assert "fnn.perceptron.fit" in code and "centers=2" in code and "max_epochs=4" in code


def test_playground_command_exits_cleanly_on_ctrl_c():
    process = subprocess.Popen([sys.executable, "-m", "fnn", "playground", "--no-browser"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    assert line.startswith("fnn playground: serving http://127.0.0.1:")
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    # The fnn command's convention for Ctrl-C: status 130 and one line, no traceback.
    assert process.returncode == 130, err
    assert err.strip().splitlines() == ["fnn playground: interrupted"], err
    assert "Traceback" not in out + err
