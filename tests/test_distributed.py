"""Distributed training: a multi-replica step equals a single-replica step; two workers agree.

TensorFlow fixes its devices when it initialises, so the checks that need two logical CPUs or
two worker processes run in subprocesses (``python tests/test_distributed.py ...``); one
subprocess loops over every registered model to keep the suite fast.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if __name__ == "__main__":  # run as a subprocess worker
    sys.path.insert(0, ROOT)
PER_REPLICA = 4  # images (pairs) per replica; the global batch is 2 * PER_REPLICA

# Tiny hyper-parameters of each registered model, and how to make its batch.
# Dropout is off (``dropout_rate=0`` or rate set to 0 below): its masks are drawn by Keras per
# replica, so no design can make them equal to a single replica's; every other source of
# randomness (noise, interpolation weights, instance noise) is drawn by the zoo and must match.
_CONV = dict(image_shape=(16, 16, 1), latent_dim=8, generator_width=8, discriminator_width=8,
             kernel_size=3)
TINY = {
    "vanilla": (dict(image_shape=(16, 16, 1), latent_dim=8, generator_units=(16, 16),
                     discriminator_units=(8, 8), maxout_pieces=2), "images"),
    "dcgan": (_CONV, "images"),
    "lsgan": (_CONV, "images"),
    "wgan": (dict(_CONV, n_critic=2), "images"),
    "wgan_gp": (dict(_CONV, n_critic=2), "images"),
    "pix2pix": (dict(image_shape=(16, 16, 1), input_channels=1, generator_width=4,
                     discriminator_width=4, discriminator_layers=1, dropout_rate=0.0), "pairs"),
    "cyclegan": (dict(image_shape=(16, 16, 1), generator_width=4, residual_blocks=1,
                      discriminator_width=4, discriminator_layers=1, pool_size=4), "pairs"),
    "srresnet": (dict(image_shape=(16, 16, 3), residual_blocks=1, filters=4), "super_resolution"),
    "srgan": (dict(image_shape=(16, 16, 3), residual_blocks=1, filters=4, discriminator_filters=4,
                   content_loss="mse"), "super_resolution"),
    "gan_cls": (dict(image_shape=(16, 16, 3), latent_dim=8, compressed_dim=4, generator_width=4,
                     discriminator_width=4, text_encoder=None), "text"),
    # Stage-I draws a quarter of the data's side and starts at 4x4: 32x32 data is the least
    "stackgan_stage1": (dict(image_shape=(32, 32, 3), latent_dim=8, condition_dim=4,
                             compressed_dim=4, generator_width=4, discriminator_width=4,
                             text_encoder=None), "text"),
    "stackgan": (dict(image_shape=(32, 32, 3), latent_dim=8, condition_dim=4, compressed_dim=4,
                      stage1_width=4, generator_width=4, residual_blocks=1, discriminator_width=4,
                      text_encoder=None), "text"),
}


# --- Subprocess side ------------------------------------------------------------------------------


def _two_cpus():
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


def _batch(image_shape, kind, count, rng):
    """``count`` training examples of a model of ``kind`` in the form its ``fit`` takes."""
    draw = lambda shape: rng.uniform(-1, 1, (count,) + tuple(shape)).astype("float32")  # noqa: E731
    if kind == "images":
        return (draw(image_shape),)
    if kind == "pairs":
        return draw(image_shape), draw(image_shape)
    if kind == "super_resolution":  # (low-resolution input, high-resolution target), x4
        height, width, channels = image_shape
        return draw((height // 4, width // 4, channels)), draw(image_shape)
    if kind == "text":
        words = np.array(["a red square", "a small blue circle", "two green triangles"])
        return ({"images": draw(image_shape), "text": words[rng.integers(0, 3, count)]},)
    raise ValueError(kind)


def _build(name, hyperparameters):
    import keras

    import zoo
    from training.distribute import synchronize_batch_norm

    keras.utils.set_random_seed(0)
    model = zoo.build_model(name, seed=5, **hyperparameters)
    for network in model.NETWORKS:
        for layer in getattr(model, network)._flatten_layers(include_self=False):
            if isinstance(layer, keras.layers.Dropout):
                layer.rate = 0.0
    synchronize_batch_norm(model)
    # SGD: an update proportional to the gradient, so a wrongly scaled gradient shows (Adam's
    # first step is invariant to the gradient's scale).
    model.compile(g_optimizer=keras.optimizers.SGD(0.05), d_optimizer=keras.optimizers.SGD(0.05))
    return model


def _network_weights(model):
    return [np.asarray(w) for network in model.NETWORKS for w in getattr(model, network).weights]


def equality_main(names):
    """One step on 2 replicas vs one step on 1 replica, same 2B examples; prints JSON per model."""
    strategy = _two_cpus()
    results = {}
    for name in names:
        try:
            results[name] = _compare_one_step(strategy, name, *TINY[name])
        except Exception as error:  # reported per model by the test
            results[name] = {"error": f"{type(error).__name__}: {str(error)[:500]}"}
    print("RESULT " + json.dumps(results))


def _compare_one_step(strategy, name, hyperparameters, kind):
    """Train copies of one tiny model for one step on 1 and on 2 replicas; how far apart?"""
    import tensorflow as tf

    single = _build(name, hyperparameters)
    with strategy.scope():
        mirrored = _build(name, hyperparameters)
    mirrored.set_weights(single.get_weights())
    start = _network_weights(single)
    count = 2 * PER_REPLICA * getattr(single, "n_critic", 1)
    data = _batch(hyperparameters["image_shape"], kind, count, np.random.default_rng(1))
    dataset = tf.data.Dataset.from_tensor_slices(data if len(data) > 1 else data[0]).batch(count)
    logs = {}
    for label, model in (("single", single), ("mirrored", mirrored)):
        history = model.fit(dataset, epochs=1, verbose=0)
        logs[label] = {k: float(v[-1]) for k, v in history.history.items()}
    after_single, after_mirrored = _network_weights(single), _network_weights(mirrored)
    return {
        "max_update": max(float(np.abs(a - s).max()) for a, s in zip(after_single, start)),
        "max_difference": max(float(np.abs(a - b).max())
                              for a, b in zip(after_single, after_mirrored)),
        "logs": logs,
    }


# --- Tests ----------------------------------------------------------------------------------------


def _run(*args, timeout=300, env=None):
    process = subprocess.run(
        [sys.executable, os.path.abspath(__file__), *args], cwd=ROOT, capture_output=True,
        text=True, timeout=timeout, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
    )
    lines = [line for line in process.stdout.splitlines() if line.startswith("RESULT ")]
    assert process.returncode == 0 and lines, process.stdout[-3000:] + process.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


@pytest.fixture(scope="module")
def equality_results():
    import zoo

    missing = sorted(set(zoo.list_models()) - set(TINY))
    assert not missing, f"add tiny hyper-parameters for {missing} to tests/test_distributed.TINY"
    return _run("equality", *zoo.list_models(), timeout=600)  # 12 models: slow when busy


def _registered():
    import zoo

    return zoo.list_models()


@pytest.mark.parametrize("name", _registered())
def test_two_replicas_take_the_single_replica_step(name, equality_results):
    result = equality_results[name]
    assert "error" not in result, result["error"]
    assert result["max_update"] > 1e-4, result  # the step changed the weights
    # float32 sums in another order: far below the update itself
    assert result["max_difference"] <= 1e-3 * result["max_update"] + 1e-6, result
    for key, value in result["logs"]["single"].items():  # trackers report the unscaled loss
        assert value == pytest.approx(result["logs"]["mirrored"][key], rel=1e-4, abs=1e-5), key



def test_mixed_precision_step_matches_float32_step_and_reloads(tmp_path):
    """mixed_float16: both players' optimizers scale the loss; unscaled, the step is float32's."""
    import keras

    import zoo
    from training import distribute

    data = _batch(_CONV["image_shape"], "images", 8, np.random.default_rng(0))[0]
    models = {}
    try:
        for mixed in (False, True):
            distribute.set_precision(mixed)
            keras.utils.set_random_seed(0)
            model = zoo.build_model("dcgan", seed=5, **_CONV)
            model.compile(g_optimizer=keras.optimizers.SGD(0.05), d_optimizer=keras.optimizers.SGD(0.05))
            if mixed:
                model.set_weights(models[False][1])
            models[mixed] = (model, [np.asarray(w) for w in model.get_weights()])
            model.fit(data, batch_size=8, epochs=1, verbose=0, shuffle=False)
    finally:
        distribute.set_precision(False)
    mixed, start = models[True]
    assert mixed.generator.layers[-1].compute_dtype == "float16"
    assert all(v.dtype == "float32" for v in mixed.trainable_variables)
    for optimizer in (mixed.g_optimizer, mixed.d_optimizer):
        assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        assert int(optimizer.iterations) == 1  # finite gradients at the initial scale
    reference = models[False][0].get_weights()
    update = max(np.abs(r - s).max() for r, s in zip(reference, start))
    difference = max(np.abs(r - m).max() for r, m in zip(reference, mixed.get_weights()))
    assert update > 1e-3 and difference < 0.05 * update, (update, difference)
    mixed.save(tmp_path / "mixed.keras")
    reloaded = keras.saving.load_model(tmp_path / "mixed.keras")
    assert isinstance(reloaded.d_optimizer, keras.optimizers.LossScaleOptimizer)
    assert reloaded.generator.layers[-1].compute_dtype == "float16"


# --- Two workers on 127.0.0.1 ---------------------------------------------------------------------

TINY_DCGAN = ["dcgan", "--batch-size", "8", "--steps-per-epoch", "6", "--set", "latent_dim=8",
              "--set", "generator_width=8", "--set", "discriminator_width=8", "--set", "kernel_size=3",
              "--strategy", "multi_worker_mirrored", "--sync-batch-norm"]


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def _start_workers(run_dir, worker_tmp, data_dir, *args):
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    processes = []
    for index in range(2):
        os.makedirs(worker_tmp[index], exist_ok=True)
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TMPDIR": worker_tmp[index],
               "ZOO_KEEP_WORKER_DIRS": "1", "CUDA_VISIBLE_DEVICES": "",
               "TF_CONFIG": json.dumps({"cluster": {"worker": workers},
                                        "task": {"type": "worker", "index": index}})}
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "training.train", *TINY_DCGAN, "--out", run_dir,
             "--data-dir", data_dir, *args],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    return processes


def _epoch(run_dir):
    try:
        with open(os.path.join(run_dir, "state.json")) as f:
            return json.load(f)["epoch"]
    except (OSError, ValueError):
        return 0


def test_two_workers_agree_the_chief_writes_and_a_killed_run_resumes(tmp_path, fashion_mnist_data_dir):
    import time

    import keras

    import zoo  # noqa: F401  (registers the models for loading)

    run_dir = str(tmp_path / "run")
    worker_tmp = [str(tmp_path / "tmp0"), str(tmp_path / "tmp1")]
    # First session: many epochs; kill worker 1 once the chief has checkpointed an epoch.
    processes = _start_workers(run_dir, worker_tmp, fashion_mnist_data_dir, "--epochs", "50")
    deadline = time.time() + 240
    while _epoch(run_dir) < 1 and time.time() < deadline and processes[0].poll() is None:
        time.sleep(0.2)
    killed_at = _epoch(run_dir)
    for process in (processes[1], processes[0]):  # the worker dies; the chief cannot go on alone
        process.kill()
        process.wait()
    assert killed_at >= 1, processes[0].stdout.read()[-3000:]
    # Second session: both resume from the chief's last checkpoint and finish one more epoch.
    processes = _start_workers(run_dir, worker_tmp, fashion_mnist_data_dir, "--resume", "--epochs",
                               str(killed_at + 1))
    outputs = [process.communicate(timeout=240)[0] for process in processes]
    assert [p.returncode for p in processes] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    assert f"Resuming {run_dir} from epoch {killed_at}" in outputs[0]
    assert _epoch(run_dir) == killed_at + 1
    # The chief wrote the run directory; worker 1 wrote its own files under its TMPDIR only.
    assert {"config.json", "history.csv", "model.keras", "state.json", "samples"} <= set(os.listdir(run_dir))
    assert not [d for d in os.listdir(worker_tmp[0])
                if os.path.exists(os.path.join(worker_tmp[0], d, "model.keras"))]
    [worker_dir] = [os.path.join(worker_tmp[1], d) for d in os.listdir(worker_tmp[1])
                    if os.path.exists(os.path.join(worker_tmp[1], d, "model.keras"))]
    chief = keras.saving.load_model(os.path.join(run_dir, "model.keras"))
    worker = keras.saving.load_model(os.path.join(worker_dir, "model.keras"))
    assert int(chief.g_optimizer.iterations) == 6 * (killed_at + 1)
    for a, b in zip(chief.get_weights(), worker.get_weights()):
        np.testing.assert_array_equal(a, b)


if __name__ == "__main__":
    os.chdir(ROOT)
    mode, *rest = sys.argv[1:]
    {"equality": equality_main}[mode](rest)
