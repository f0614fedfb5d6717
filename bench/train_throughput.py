"""A GAN training step against this machine's matrix-multiply rate, with and without XLA.

    python bench/train_throughput.py [--models dcgan wgan_gp pix2pix] [--rounds 3] [--steps 8]
                                     [--end-to-end-steps 20] [--json-out F]

In one run, as medians over ``--rounds`` alternating rounds (the machine is shared and timings
swing by 30% between calls, so only side-by-side medians and ratios mean something):

- the GEMM rate: a 2048x2048 float32 ``tf.matmul`` and numpy's ``@`` (GFLOP/s, 2 n^3 flops);
- for each model at its paper's batch size, with ``jit_compile`` False and True: images/s of
  ``fit`` on a cached in-memory batch (tracing and compilation excluded), and the step's
  GFLOP/s counted from its convolution and dense ops: every ``Conv2D``,
  ``Conv2DBackpropInput`` (transposed convs and input gradients), ``Conv2DBackpropFilter``
  and ``MatMul`` in the traced ``train_step`` graph, with its static shapes; and that rate's
  share of the faster GEMM rate;
- the end-to-end rate of ``python -m training.train dcgan`` (input pipeline, callbacks,
  checkpoints; the second epoch's ``images_per_second`` from ``history.csv``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import zoo  # noqa: E402

GEMM_SIZE = 2048


def gemm_rates(repeats=5):
    """GFLOP/s of a large float32 matrix product: (tf.matmul, numpy)."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((GEMM_SIZE, GEMM_SIZE)).astype("float32") for _ in range(2))
    ta, tb = tf.constant(a), tf.constant(b)
    flops = 2 * GEMM_SIZE**3

    def rate(fn):
        fn()
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            seconds.append(time.perf_counter() - start)
        return flops / min(seconds) / 1e9

    return rate(lambda: tf.matmul(ta, tb).numpy()), rate(lambda: a @ b)


def _example_batch(name, batch_size):
    """A cached training batch of ``name`` at its default hyper-parameters."""
    spec = zoo.get_spec(name)
    hyperparameters = spec.defaults
    rng = np.random.default_rng(0)
    shape = tuple(hyperparameters["image_shape"])
    draw = lambda s: rng.uniform(-1, 1, (batch_size,) + tuple(s)).astype("float32")  # noqa: E731
    if spec.kind == "image_to_image":
        inputs = shape[:2] + (hyperparameters.get("input_channels", shape[-1]),)
        return draw(inputs), draw(shape)
    return (draw(shape),)


def _op_flops(op):
    """Multiply-add flops (x2) of one conv or matmul op from its static shapes, else 0."""
    try:
        if op.type == "Conv2D":
            output, kernel = op.outputs[0].shape, op.inputs[1].shape
            return 2 * int(np.prod(output)) * int(kernel[0]) * int(kernel[1]) * int(kernel[2])
        if op.type in ("Conv2DBackpropInput", "Conv2DBackpropFilter"):
            # inputs: (input sizes, kernel, out_backprop) / (input, kernel sizes, out_backprop)
            kernel = op.inputs[1].shape if op.type == "Conv2DBackpropInput" else op.outputs[0].shape
            out_backprop = op.inputs[2].shape
            return 2 * int(np.prod(out_backprop)) * int(kernel[0]) * int(kernel[1]) * int(kernel[2])
        if op.type in ("MatMul", "BatchMatMulV2"):
            a, output = op.inputs[0].shape, op.outputs[0].shape
            inner = int(a[-2] if op.get_attr("transpose_a" if op.type == "MatMul" else "adj_x") else a[-1])
            return 2 * int(np.prod(output)) * inner
    except (TypeError, ValueError):
        return 0
    return 0


def step_flops(model, batch):
    """Conv and dense flops of one ``train_step`` on ``batch``, counted in its traced graph."""
    specs = tuple(tf.TensorSpec(x.shape, x.dtype) for x in batch)
    function = tf.function(lambda *data: model.train_step(data if len(data) > 1 else data[0]))
    graph = function.get_concrete_function(*specs).graph
    graphs = [graph] + [f.graph for f in getattr(graph, "_functions", {}).values() if hasattr(f, "graph")]
    return sum(_op_flops(op) for g in graphs for op in g.get_operations())


class Bench:
    """One compiled model and its cached batch, timed ``steps`` steps at a time."""

    def __init__(self, name, jit_compile):
        spec = zoo.get_spec(name)
        self.name, self.jit_compile = name, jit_compile
        self.batch_size = spec.training["batch_size"]
        self.model = zoo.build_model(name, seed=0)
        self.images_per_step = self.batch_size * getattr(self.model, "n_critic", 1)
        self.model.compile(*spec.make_optimizers(), jit_compile=jit_compile)
        batch = _example_batch(name, self.images_per_step)
        self.dataset = tf.data.Dataset.from_tensors(batch if len(batch) > 1 else batch[0]).repeat()
        self.model.fit(self.dataset, steps_per_epoch=3, epochs=1, verbose=0)  # trace / compile

    def seconds_per_step(self, steps):
        """Median wall time between consecutive step ends within one ``fit`` (the first step,
        which may trace, is not timed)."""
        ends = []
        clock = keras.callbacks.LambdaCallback(
            on_train_batch_end=lambda batch, logs: ends.append(time.perf_counter()))
        self.model.fit(self.dataset, steps_per_epoch=steps + 1, epochs=1, verbose=0, callbacks=[clock])
        return statistics.median(np.diff(ends))


def end_to_end(steps):
    """images/s of the second epoch of a real ``python -m training.train dcgan`` run."""
    with tempfile.TemporaryDirectory() as run_dir:
        subprocess.run([sys.executable, "-m", "training.train", "dcgan", "--epochs", "2",
                        "--steps-per-epoch", str(steps), "--out", run_dir], cwd=ROOT, check=True,
                       capture_output=True)
        with open(os.path.join(run_dir, "history.csv")) as f:
            return float(list(csv.DictReader(f))[-1]["images_per_second"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["dcgan", "wgan_gp", "pix2pix"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--end-to-end-steps", type=int, default=20, help="0: skip")
    parser.add_argument("--json-out", default=None)
    args = parser.parse_args()

    flops = {}
    for name in args.models:
        model = zoo.build_model(name, seed=0)
        model.compile(*zoo.get_spec(name).make_optimizers())
        bench_batch = _example_batch(name, zoo.get_spec(name).training["batch_size"]
                                     * getattr(model, "n_critic", 1))
        flops[name] = step_flops(model, bench_batch)
    benches = [Bench(name, jit) for name in args.models for jit in (False, True)]
    timings = {(b.name, b.jit_compile): [] for b in benches}
    gemm, end_to_end_rates = {"tf.matmul": [], "numpy": []}, []
    for _ in range(args.rounds):  # alternate everything, round by round
        tf_rate, np_rate = gemm_rates()
        gemm["tf.matmul"].append(tf_rate)
        gemm["numpy"].append(np_rate)
        for bench in benches:
            timings[(bench.name, bench.jit_compile)].append(bench.seconds_per_step(args.steps))
        if args.end_to_end_steps:
            end_to_end_rates.append(end_to_end(args.end_to_end_steps))

    gemm_median = {k: statistics.median(v) for k, v in gemm.items()}
    best_gemm = max(gemm_median.values())
    rows = []
    for bench in benches:
        seconds = statistics.median(timings[(bench.name, bench.jit_compile)])
        gflops = flops[bench.name] / seconds / 1e9
        rows.append({
            "model": bench.name, "jit_compile": bench.jit_compile,
            "images_per_step": bench.images_per_step,
            "mflop_per_image": round(flops[bench.name] / bench.images_per_step / 1e6, 1),
            "ms_per_step": round(1000 * seconds, 1),
            "images_per_second": round(bench.images_per_step / seconds, 1),
            "gflop_per_second": round(gflops, 1), "share_of_gemm": round(gflops / best_gemm, 3),
        })
    print(f"\n{os.cpu_count()} CPUs, {args.rounds} alternating rounds, medians. GEMM "
          f"{GEMM_SIZE}^2 float32: tf.matmul {gemm_median['tf.matmul']:.1f} GFLOP/s, numpy "
          f"{gemm_median['numpy']:.1f} GFLOP/s\n")
    print("| model | jit_compile | images/step | MFLOP/image | ms/step | images/s | GFLOP/s "
          "| share of GEMM |\n|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['jit_compile']} | {r['images_per_step']} | {r['mflop_per_image']} "
              f"| {r['ms_per_step']} | {r['images_per_second']} | {r['gflop_per_second']} "
              f"| {100 * r['share_of_gemm']:.0f}% |")
    if end_to_end_rates:
        print(f"\nEnd to end, python -m training.train dcgan (2nd epoch of {args.end_to_end_steps} "
              f"steps): median {statistics.median(end_to_end_rates):.1f} images/s "
              f"(rounds: {[round(r, 1) for r in end_to_end_rates]})")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"gemm_gflop_per_second": gemm, "rows": rows, "timings": {
                f"{k[0]}/{k[1]}": v for k, v in timings.items()}, "end_to_end": end_to_end_rates},
                f, indent=2)


if __name__ == "__main__":
    main()
