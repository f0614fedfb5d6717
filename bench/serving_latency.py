"""Latency and throughput of ``export.serve``: REST and gRPC Predict vs the in-process call.

    python bench/serving_latency.py [--base saved_models --model NAME] [--signature serving_default]
                                    [--requests 300] [--clients 8] [--json-out F]
    python bench/serving_latency.py --batching [--rounds 3] [--batching-parameters-file F] ...

Without ``--model`` a toy generator (tests/serving_fixtures.py) is exported to a temp dir. The
server runs as a separate process (``python -m export.serve`` on free ports) so clients and
server do not share a GIL. For batch 1 and 64 it measures p50/p99 of: the loaded SavedModel
signature called in this process (the floor), REST predict (row format, keep-alive connection,
JSON decoded) and gRPC Predict (response decoded with ``tf.make_ndarray``); then throughput with
``--clients`` concurrent clients. Prints a markdown table.

This process has TensorFlow loaded (for the floor and ``make_ndarray``); its objects are frozen
out of the garbage collector (``gc.freeze``) so that decoding big JSON responses on the client
side does not trigger full collections over them, which would be charged to the server.
"""

from __future__ import annotations

import argparse
import gc
import http.client
import json
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import grpc  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc  # noqa: E402

from export.serving.layout import find_models  # noqa: E402

BATCHES = (1, 64)


def make_inputs(function, batch: int, rng) -> dict[str, np.ndarray]:
    """Random inputs fitting a signature, with ``batch`` for unknown dimensions."""
    inputs = {}
    for name, spec in function.structured_input_signature[1].items():
        shape = [batch if d is None else d for d in spec.shape.as_list()]
        if spec.dtype == tf.string:
            inputs[name] = np.full(shape, b"x", dtype=object)
        elif spec.dtype.is_integer:
            inputs[name] = rng.integers(0, 1000, shape).astype(spec.dtype.as_numpy_dtype)
        else:
            inputs[name] = rng.standard_normal(shape).astype(spec.dtype.as_numpy_dtype)
    return inputs


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(base: Path, *flags: str) -> tuple[subprocess.Popen, str, str]:
    """``python -m export.serve --base BASE FLAGS`` on free ports; returns (process, rest
    host:port, grpc target)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "export.serve", "--base", str(base),
         f"--rest_api_port={free_port()}", f"--port={free_port()}", *flags],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in process.stdout], daemon=True).start()
    rest = grpc_target = None
    deadline = time.monotonic() + 120
    while (rest is None or grpc_target is None) and time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            if process.poll() is not None:
                raise RuntimeError("export.serve exited during start-up")
            continue
        if line.startswith("REST API at http://"):
            rest = line.split("http://", 1)[1].strip()
        elif line.startswith("gRPC API at "):
            grpc_target = line.split("gRPC API at ", 1)[1].strip()
    if rest is None or grpc_target is None:
        process.kill()
        raise RuntimeError("export.serve did not report its addresses")
    return process, rest, grpc_target


class RestClient:
    """One keep-alive connection posting row-format predict requests."""

    def __init__(self, address: str, model: str, signature: str):
        host, port = address.rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=60)
        self.path = f"/v1/models/{model}:predict"
        self.signature = signature

    def body(self, inputs: dict[str, np.ndarray]) -> bytes:
        names = list(inputs)
        if len(names) == 1:
            instances = inputs[names[0]].tolist()
        else:
            instances = [dict(zip(names, row)) for row in zip(*(inputs[n].tolist() for n in names))]
        return json.dumps({"signature_name": self.signature, "instances": instances}).encode()

    def __call__(self, body: bytes):
        self.conn.request("POST", self.path, body, {"Content-Type": "application/json"})
        response = self.conn.getresponse()
        payload = json.loads(response.read())
        if response.status != 200:
            raise RuntimeError(payload)
        return payload


class GrpcClient:
    """PredictionServiceStub.Predict with a prebuilt request; outputs decoded to numpy."""

    def __init__(self, channel: grpc.Channel, model: str, signature: str):
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        self.model, self.signature = model, signature

    def body(self, inputs: dict[str, np.ndarray]) -> predict_pb2.PredictRequest:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = self.model
        request.model_spec.signature_name = self.signature
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        return request

    def __call__(self, request):
        response = self.stub.Predict(request, timeout=60)
        return {k: tf.make_ndarray(v) for k, v in response.outputs.items()}


def latencies_ms(call, payload, requests: int, warmup: int = 20) -> dict:
    for _ in range(warmup):
        call(payload)
    samples = []
    for _ in range(requests):
        start = time.perf_counter()
        call(payload)
        samples.append((time.perf_counter() - start) * 1000)
    return {"p50_ms": round(float(np.percentile(samples, 50)), 3),
            "p99_ms": round(float(np.percentile(samples, 99)), 3)}


def throughput(make_client, payload_for, clients: int, requests: int, batch: int) -> dict:
    """Requests/s and items/s with ``clients`` threads, each with its own client."""
    per_client = max(1, requests // clients)
    workers = [make_client() for _ in range(clients)]
    payloads = [payload_for(w) for w in workers]
    for worker, payload in zip(workers, payloads):
        worker(payload)  # connect + warm up

    def run(index):
        for _ in range(per_client):
            workers[index](payloads[index])

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(run, range(clients)))
    seconds = time.perf_counter() - start
    total = per_client * clients
    return {"requests_per_s": round(total / seconds, 1),
            "items_per_s": round(total * batch / seconds, 1)}


def run(base: Path, model: str, signature: str, requests: int, clients: int) -> dict:
    versions = find_models(base).get(model)
    if not versions:
        raise SystemExit(f"no complete version of model {model!r} under {base}")
    version = max(versions)
    function = tf.saved_model.load(str(versions[version])).signatures[signature]
    rng = np.random.default_rng(0)
    inputs = {b: make_inputs(function, b, rng) for b in BATCHES}
    process, rest_address, grpc_target = start_server(base)
    gc.collect()
    gc.freeze()
    channel = grpc.insecure_channel(grpc_target, options=[
        ("grpc.max_receive_message_length", -1)])
    results = {"model": model, "version": version, "signature": signature,
               "requests": requests, "clients": clients, "latency": [], "throughput": []}
    try:
        floor = lambda tensors: function(**tensors)  # noqa: E731
        rest = RestClient(rest_address, model, signature)
        grpc_client = GrpcClient(channel, model, signature)
        for batch in BATCHES:
            tensors = {k: tf.constant(v) for k, v in inputs[batch].items()}
            for path, call, payload in (
                    ("in-process signature", floor, tensors),
                    ("REST predict", rest, rest.body(inputs[batch])),
                    ("gRPC Predict", grpc_client, grpc_client.body(inputs[batch]))):
                results["latency"].append({"path": path, "batch": batch,
                                           **latencies_ms(call, payload, requests)})
            for path, make_client in (
                    ("REST predict", lambda: RestClient(rest_address, model, signature)),
                    ("gRPC Predict", lambda: GrpcClient(channel, model, signature))):
                results["throughput"].append({"path": path, "batch": batch, **throughput(
                    make_client, lambda c, b=batch: c.body(inputs[b]), clients, requests, batch)})
    finally:
        channel.close()
        process.terminate()
        process.wait(timeout=30)
    return results


BATCHING_PARAMETERS = ("max_batch_size { value: 8 }\nbatch_timeout_micros { value: 0 }\n"
                       "num_batch_threads { value: 2 }\n")


def timed_clients(make_client, payload_for, clients: int, requests: int) -> dict:
    """Requests/s and per-request p50/p99 with ``clients`` concurrent threads."""
    per_client = max(1, requests // clients)
    workers = [make_client() for _ in range(clients)]
    payloads = [payload_for(w) for w in workers]
    for worker, payload in zip(workers, payloads):
        for _ in range(5):
            worker(payload)  # connect + warm up
    samples: list[float] = []

    def run_one(index):
        own = []
        for _ in range(per_client):
            start = time.perf_counter()
            workers[index](payloads[index])
            own.append((time.perf_counter() - start) * 1000)
        samples.extend(own)

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(run_one, range(clients)))
    seconds = time.perf_counter() - start
    return {"requests_per_s": len(samples) / seconds,
            "p50_ms": float(np.percentile(samples, 50)),
            "p99_ms": float(np.percentile(samples, 99))}


def batching_table(base: Path, model: str, signature: str, requests: int, clients: int,
                   rounds: int, batching_file: Path) -> dict:
    """``clients`` clients at batch 1 against a server without and with --enable_batching,
    alternating server kinds round by round (the machine is shared): medians over rounds."""
    versions = find_models(base)[model]
    function = tf.saved_model.load(str(versions[max(versions)])).signatures[signature]
    inputs = make_inputs(function, 1, np.random.default_rng(0))
    ceiling = batching_ceiling(function, clients)
    flags = {"off": (), "on": ("--enable_batching", f"--batching_parameters_file={batching_file}")}
    rows = {(kind, path): [] for kind in flags for path in ("gRPC Predict", "REST predict")}
    for _ in range(rounds):
        for kind, extra in flags.items():
            process, rest_address, grpc_target = start_server(base, *extra)
            channel = grpc.insecure_channel(grpc_target)
            try:
                for path, make_client in (
                        ("gRPC Predict", lambda: GrpcClient(channel, model, signature)),
                        ("REST predict", lambda: RestClient(rest_address, model, signature))):
                    rows[(kind, path)].append(timed_clients(
                        make_client, lambda c: c.body(inputs), clients, requests))
            finally:
                channel.close()
                process.terminate()
                process.wait(timeout=30)
    table = []
    for (kind, path), samples in rows.items():
        table.append({"batching": kind, "path": path, **{
            key: round(float(np.median([s[key] for s in samples])), 2)
            for key in ("requests_per_s", "p50_ms", "p99_ms")}})
    return {"model": model, "signature": signature, "clients": clients, "requests": requests,
            "rounds": rounds, "batching_parameters": batching_file.read_text(), "rows": table,
            "ceiling": ceiling}


def batching_ceiling(function, batch: int, requests: int = 50) -> dict:
    """What merging can buy at most: ``batch`` batch-1 calls of the loaded signature vs one call
    at ``batch`` rows, in this process (medians of alternating runs). On a CPU whose cores the
    concurrent unbatched calls already fill, a merged call costs nearly ``batch`` single ones."""
    rng = np.random.default_rng(0)
    single, merged = make_inputs(function, 1, rng), make_inputs(function, batch, rng)
    times = {"single": [], "merged": []}
    for _ in range(5):
        times["single"].append(latencies_ms(lambda x: function(**x), single, requests)["p50_ms"])
        times["merged"].append(latencies_ms(lambda x: function(**x), merged, requests)["p50_ms"])
    single_ms, merged_ms = (float(np.median(times[k])) for k in ("single", "merged"))
    return {"batch": batch, "single_call_ms": round(single_ms, 3),
            "merged_call_ms": round(merged_ms, 3),
            "max_speedup": round(batch * single_ms / merged_ms, 2)}


def batching_markdown(results: dict) -> str:
    lines = [f"Model `{results['model']}`, `{results['signature']}`, {results['clients']} "
             f"clients at batch 1, {results['requests']} requests per round, median of "
             f"{results['rounds']} alternating rounds (shared machine).", "",
             "| path | batching | requests/s | p50 ms | p99 ms |",
             "| --- | --- | ---: | ---: | ---: |"]
    by = {(r["path"], r["batching"]): r for r in results["rows"]}
    for path in ("gRPC Predict", "REST predict"):
        for kind in ("off", "on"):
            r = by[(path, kind)]
            lines.append(f"| {path} | {kind} | {r['requests_per_s']} | {r['p50_ms']} | "
                         f"{r['p99_ms']} |")
        off, on = by[(path, "off")], by[(path, "on")]
        lines.append(f"| {path} | on/off | {on['requests_per_s'] / off['requests_per_s']:.2f}x | "
                     f"{on['p50_ms'] / off['p50_ms']:.2f}x | {on['p99_ms'] / off['p99_ms']:.2f}x |")
    c = results["ceiling"]
    lines += ["", f"Ceiling, in process: one call at batch {c['batch']} takes {c['merged_call_ms']} ms, "
              f"{c['batch']} calls at batch 1 take {c['batch']} x {c['single_call_ms']} ms: merging "
              f"can at most give {c['max_speedup']}x the signature throughput."]
    return "\n".join(lines)


def markdown(results: dict) -> str:
    lines = [f"Model `{results['model']}` v{results['version']}, signature "
             f"`{results['signature']}`, {results['requests']} requests per row.", "",
             "| path | batch | p50 ms | p99 ms |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {r['path']} | {r['batch']} | {r['p50_ms']} | {r['p99_ms']} |"
              for r in results["latency"]]
    lines += ["", f"Throughput with {results['clients']} concurrent clients:", "",
              "| path | batch | requests/s | items/s |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {r['path']} | {r['batch']} | {r['requests_per_s']} | {r['items_per_s']} |"
              for r in results["throughput"]]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default=None, help="model base dir (default: temp toy model)")
    parser.add_argument("--model", default=None, help="model name under --base")
    parser.add_argument("--signature", default="serving_default")
    parser.add_argument("--requests", type=int, default=300, help="timed requests per row")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--json-out", default=None)
    parser.add_argument("--batching", action="store_true",
                        help="the batching table: batch-1 clients, --enable_batching off vs on")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (--batching)")
    parser.add_argument("--batching-parameters-file", default=None,
                        help="BatchingParameters text proto (default: max 8, timeout 0, 2 threads)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.model is None:
            from tests.serving_fixtures import make_toy_saved_model

            base, model = Path(tmp), "toy"
            make_toy_saved_model(base / model, 1)
        else:
            base, model = Path(args.base or "saved_models"), args.model
        if args.batching:
            params = Path(args.batching_parameters_file or Path(tmp) / "batching.txt")
            if args.batching_parameters_file is None:
                params.write_text(BATCHING_PARAMETERS)
            results = batching_table(base, model, args.signature, args.requests, args.clients,
                                     args.rounds, params)
            results["cpus"] = os.cpu_count()
            print(batching_markdown(results))
        else:
            results = run(base, model, args.signature, args.requests, args.clients)
            results["cpus"] = os.cpu_count()
            print(markdown(results))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
