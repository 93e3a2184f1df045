"""fnn playground in a real headless Chromium (Debian's /usr/bin/chromium) driven by Playwright.

Playwright's Python package drives the system browser (``executable_path``); nothing
is downloaded. In CI (``CI`` set, as ``.ci/run`` runs) these tests FAIL without Chromium,
they do not skip: ``.ci/run`` installs it. Elsewhere they skip with the reason and the
command that installs it (``apt-get install chromium``).
"""

import os
import re
import subprocess
import sys
import threading

import pytest

from fnn.playground import make_server

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="module")
def url():
    server = make_server(0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not os.path.exists(CHROMIUM):
        message = f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)"
        assert not os.environ.get("CI"), message
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        profile = tmp_path_factory.mktemp("chromium-profile")
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport={"width": 1400, "height": 900}, bypass_csp=True)  # the page forbids eval; the test needs it
        yield context
        context.close()


@pytest.fixture
def page(browser, url):
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # The first run's reply: its program compiles first (a minute on a loaded machine).
    with page.expect_response(lambda r: r.url.endswith("/api/run"), timeout=180_000):
        page.goto(url)
    yield page
    page.close()
    assert not errors, errors


def _test_loss(page) -> float:
    return float(page.get_attribute("#test-loss", "data-value") or "nan")


def test_playground_page_learns_xor_with_tanh(page, tmp_path):
    page.select_option("#data", "xor")
    page.select_option("#activation", "tanh")
    page.wait_for_function("document.getElementById('activation').value === 'tanh'")
    before = page.eval_on_selector("#output", "c => c.toDataURL()")
    page.click("#play")
    page.wait_for_function("(v => v !== '' && Number(v) < 0.05)"
                           "(document.getElementById('test-loss').dataset.value)", timeout=30_000)
    page.click("#play")            # pause
    assert page.eval_on_selector("#output", "c => c.toDataURL()") != before
    assert int(page.text_content("#epoch")) > 0
    page.screenshot(path=str(tmp_path / "playground.png"))
    assert (tmp_path / "playground.png").stat().st_size > 10_000


def test_playground_perceptron_preset_never_solves_xor(page):
    page.select_option("#data", "xor")
    page.click("#preset-perceptron")
    page.wait_for_function("document.getElementById('test-name').textContent === 'error'")
    for i in range(1, 5):
        page.click("#step")
        page.wait_for_function(f"Number(document.getElementById('epoch').textContent) >= {5 * i}")
    assert _test_loss(page) > 0.2
    assert float(page.text_content("#train-loss")) > 0.2


def test_playground_shown_code_reproduces_the_page_loss_with_dropout(page, tmp_path):
    for field, value in (("epochs_per_update", "7"), ("dropout", "0.2")):
        page.fill(f"#{field}", value)
        with page.expect_response(lambda r: r.url.endswith("/api/run"), timeout=180_000):
            page.press(f"#{field}", "Enter")      # the new run, with the dropout program compiled
    for i in range(1, 4):
        page.click("#step")
        page.wait_for_function(f"Number(document.getElementById('epoch').textContent) >= {7 * i}")
    shown = _test_loss(page)
    page.click("#show-code")
    page.wait_for_selector("#code:not([hidden])")
    script = tmp_path / "run.py"
    script.write_text(page.text_content("#code"))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert out.returncode == 0, out.stderr
    epoch, loss = re.search(r"epoch (\d+) test loss ([0-9.e+-]+)", out.stdout).groups()
    assert "dropout=0.2" in script.read_text() and int(epoch) == 21
    assert float(loss) == pytest.approx(shown, rel=2e-5)


def test_playground_bad_value_shows_an_error(page):
    page.fill("#points", "5")
    page.press("#points", "Enter")
    page.wait_for_selector("#error:not([hidden])")
    assert "points must be an integer in [20, 2000]; got 5" in page.text_content("#error")
