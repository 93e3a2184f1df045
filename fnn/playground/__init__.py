r"""``fnn playground``: watch a network learn in the browser, trained by fnn itself.

A local web page in the spirit of TensorFlow Playground, driven by the real library:
choose the data (xor, circles, moons, blobs, spirals), the network (hidden layers and
neurons, the activation, dropout), the optimizer and its learning rate, batch size and
weight decay, press play and watch the decision boundary form. The views are what the notes
teach: the output heat map, a map per hidden neuron, the weights as lines, train and
test loss curves and the per-layer gradient norms (sigmoid with 6 layers: the first
layers' bars vanish; ReLU: they return). The "perceptron" preset (one neuron, step
activation, Rosenblatt's rule, :mod:`fnn.perceptron`) never gets XOR right. "Show the
code" prints the :func:`fnn.fit` script that reproduces the page's run, loss for loss.

Each update of the page is one compiled program (a chunk of epochs, exactly as
:func:`fnn.fit` runs them, plus every heat map on a 64x64 grid). The server is the
standard library's threaded HTTP server on 127.0.0.1, refusing any request whose Host
or Origin is not its own; the page is static files shipped in the package::

    fnn playground                 # a free port, opens the browser
    fnn playground --port 8000 --no-browser

Example:
  >>> server = make_server()           # bound to 127.0.0.1, a free port
  >>> server.server_address[0]
  '127.0.0.1'
  >>> server.server_close()
"""

from __future__ import annotations

import sys
import threading
import webbrowser

from fnn.playground._server import make_server

__all__ = ["make_server", "serve"]


def serve(port: int = 0, *, open_browser: bool = True, out=None) -> int:
    """Serve the playground on ``http://127.0.0.1:port`` until Ctrl-C; return 0.

    Args:
      port: TCP port, 0 for a free one.
      open_browser: open the page in the default browser.
      out: where the URL is printed (default stdout).

    Returns:
      0 after Ctrl-C, once the server is closed.
    """
    out = sys.stdout if out is None else out
    server = make_server(port)
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:   # from the first line printed on, Ctrl-C is a clean exit
        print(f"fnn playground: serving {url} (Ctrl-C to stop)", file=out, flush=True)
        if open_browser:
            threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        print("fnn playground: stopped", file=out, flush=True)
    finally:
        server.server_close()
    return 0
