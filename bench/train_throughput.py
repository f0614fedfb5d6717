"""Images per second of a GAN training step on this machine, with and without XLA.

    python bench/train_throughput.py [--model dcgan] [--batch-size 128] [--steps 60] [--json-out F]

Feeds a cached in-memory batch (the step, not the input pipeline, is measured), warms up
(tracing / XLA compilation excluded), then times ``--steps`` steps with ``fit``. Prints a
markdown table; the project's default (``--no-jit-compile`` in training.train) is the faster.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import zoo  # noqa: E402


def measure(model_name, batch_size, steps, jit_compile, warmup=10):
    spec = zoo.get_spec(model_name)
    model = zoo.build_model(model_name, seed=0)
    g_optimizer, d_optimizer = spec.make_optimizers()
    model.compile(g_optimizer=g_optimizer, d_optimizer=d_optimizer, jit_compile=jit_compile)
    images = np.random.default_rng(0).uniform(-1, 1, (batch_size,) + model.image_shape)
    dataset = tf.data.Dataset.from_tensors(images.astype("float32")).repeat()
    model.fit(dataset, steps_per_epoch=warmup, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
    seconds = time.perf_counter() - start
    return {"model": model_name, "jit_compile": jit_compile, "batch_size": batch_size,
            "steps": steps, "seconds": round(seconds, 3),
            "images_per_second": round(steps * batch_size / seconds, 1),
            "ms_per_step": round(1000 * seconds / steps, 2)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="dcgan", choices=zoo.list_models())
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--json-out", default=None)
    args = parser.parse_args()
    results = [measure(args.model, args.batch_size, args.steps, jit) for jit in (False, True)]
    devices = [d.device_type for d in tf.config.list_physical_devices()]
    print(f"\n{args.model}, batch {args.batch_size}, {args.steps} steps, devices {devices}, "
          f"{os.cpu_count()} CPUs\n")
    print("| jit_compile | images/s | ms/step |\n|---|---|---|")
    for r in results:
        print(f"| {r['jit_compile']} | {r['images_per_second']} | {r['ms_per_step']} |")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"devices": devices, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
