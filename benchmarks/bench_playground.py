r"""Latency of one ``fnn playground`` page update, and the epochs per second it sustains.

An update is what the page waits for between two frames: a chunk of ``epochs_per_update``
training epochs plus every view (the 64x64 output heat map, a 32x32 map per hidden
neuron, the per-layer gradient norms) in one compiled call, then the JSON the server
sends. Cases: the engine call alone (``update``) and the whole HTTP round trip of
``POST /api/step`` on a local server (``http``), for the default network (2 hidden
layers of 8, tanh, Adam, batch 10, 200 points) at several chunk sizes. Target: an
update within 50 ms on 2 CPU cores. ``epochs_per_s`` = chunk / median latency.

Run::

    python benchmarks/bench_playground.py                 # points 200
    python benchmarks/bench_playground.py --sizes 200,1000 --repeats 30
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _common import Timing, add_common_args, format_table, output_path, record, write_json  # noqa: E402

from fnn.playground import _config, _engine, make_server  # noqa: E402

COLUMNS = ["case", "shapes", "compile_s", "median_us", "min_us", "epochs_per_s"]


def _time(call, repeats: int) -> Timing:
    start = time.perf_counter()
    call()
    compile_s = time.perf_counter() - start
    for _ in range(3):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return Timing(compile_s, times, 1)


def engine_case(points: int, chunk: int, repeats: int) -> Timing:
    run = _engine.start(_config.parse({"points": points, "epochs_per_update": chunk}))
    holder = [run]

    def call():
        holder[0], _ = _engine.advance(holder[0])   # returns host arrays: already waited on
    return _time(call, repeats)


def http_case(points: int, chunk: int, repeats: int) -> Timing:
    server = make_server(0)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    port = server.server_address[1]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Host": f"127.0.0.1:{port}", "Content-Type": "application/json"}

    def post(path, body):
        connection.request("POST", path, body=json.dumps(body), headers=headers)
        return json.loads(connection.getresponse().read())

    rid = post("/api/run", {"config": {"points": points, "epochs_per_update": chunk}})["id"]
    try:
        return _time(lambda: post("/api/step", {"id": rid}), repeats)
    finally:
        connection.close()
        server.shutdown()
        server.server_close()


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser, sizes="200", repeats=30, out="benchmarks/results/playground.json")
    parser.add_argument("--chunks", default="1,5,20", help="epochs per update to time")
    args = parser.parse_args(argv)
    sizes = [40] if args.tiny else args.sizes
    chunks = [2] if args.tiny else [int(c) for c in args.chunks.split(",")]
    rows = []
    for points in sizes:
        for chunk in chunks:
            for kind, case in (("update", engine_case), ("http", http_case)):
                timing = case(points, chunk, args.repeats)
                rows.append(record(case=f"{kind}/epochs={chunk}", timing=timing, dtype="float32",
                                   shapes=[points, 2], epochs_per_s=chunk / timing.median_s,
                                   network="2-8-8-2 tanh adam batch 10", grid=_engine.GRID))
    print(format_table(rows, COLUMNS))
    write_json(output_path(args), rows)
    return rows


if __name__ == "__main__":
    main()
