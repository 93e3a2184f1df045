r"""Latency of one ``fnn playground`` page update, and the epochs per second it sustains.

An update is what the page waits for between two frames: a chunk of ``epochs_per_update``
training epochs plus every view (the 64x64 output heat map, a 32x32 map per hidden
neuron, the per-layer gradient norms) in one compiled call, then the JSON the server
sends. Cases: the engine call alone (``update``) and the whole HTTP round trip of
``POST /api/step`` on a local server (``http``), for the default network (2 hidden
layers of 8, tanh, Adam, batch 10, 200 points) at several chunk sizes, without and with
dropout (the general model: a mask per hidden layer and step). Target: an update within
50 ms on 2 CPU cores. ``epochs_per_s`` = chunk / median latency; ``ratio`` = a dropout
case's median over the same case without dropout, timed interleaved with it.

Run::

    python benchmarks/bench_playground.py                 # points 200
    python benchmarks/bench_playground.py --sizes 200,1000 --repeats 30 --dropout 0,0.2,0.5
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _common import add_common_args, format_table, output_path, record, time_interleaved, write_json  # noqa: E402

from fnn.playground import _config, _engine, make_server  # noqa: E402

COLUMNS = ["case", "shapes", "compile_s", "median_us", "min_us", "epochs_per_s", "ratio"]


def engine_case(config: dict):
    """One page update by the engine (it returns host arrays: already waited on)."""
    holder = [_engine.start(_config.parse(config))]

    def call():
        holder[0], _ = _engine.advance(holder[0])
    return call


class HttpPage:
    """A page of a local server: ``step()`` is one ``POST /api/step`` round trip (the
    first one opens the run with ``POST /api/run``)."""

    def __init__(self, server, config: dict):
        port = server.server_address[1]
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        self.headers = {"Host": f"127.0.0.1:{port}", "Content-Type": "application/json"}
        self.config, self.id = config, None

    def post(self, path: str, body: dict) -> dict:
        self.connection.request("POST", path, body=json.dumps(body), headers=self.headers)
        return json.loads(self.connection.getresponse().read())

    def step(self) -> dict:
        if self.id is None:
            self.id = self.post("/api/run", {"config": self.config})["id"]
        return self.post("/api/step", {"id": self.id})


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser, sizes="200", repeats=30, out="benchmarks/results/playground.json")
    parser.add_argument("--chunks", default="1,5,20", help="epochs per update to time")
    parser.add_argument("--dropout", default="0,0.2", help="dropout rates to time (0: none, the reference)")
    args = parser.parse_args(argv)
    sizes = [40] if args.tiny else args.sizes
    chunks = [2] if args.tiny else [int(c) for c in args.chunks.split(",")]
    rates = [0.0] if args.tiny else [float(r) for r in args.dropout.split(",")]
    server = make_server(0)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    rows, pages = [], []
    try:
        for points in sizes:
            for chunk in chunks:
                cases = {}
                for rate in rates:    # the variants of one chunk are timed interleaved
                    config = {"points": points, "epochs_per_update": chunk, "dropout": rate}
                    pages.append(HttpPage(server, config))
                    cases[("update", rate)] = (engine_case(config), ())
                    cases[("http", rate)] = (pages[-1].step, ())
                timings = time_interleaved(cases, repeats=args.repeats)
                for (kind, rate), timing in timings.items():
                    reference = timings[(kind, rates[0])] if rate != rates[0] else None
                    rows.append(record(case=f"{kind}/epochs={chunk}/dropout={rate:g}", timing=timing,
                                       dtype="float32", shapes=[points, 2], reference=reference,
                                       epochs_per_s=chunk / timing.median_s, dropout=rate,
                                       network="2-8-8-2 tanh adam batch 10", grid=_engine.GRID))
    finally:
        for page in pages:
            page.connection.close()
        server.shutdown()
        server.server_close()
    print(format_table(rows, COLUMNS))
    write_json(output_path(args), rows)
    return rows


if __name__ == "__main__":
    main()
