"""Presets (zoo/presets.py, python -m export.presets): build, download over HTTP, verify, cache,
load, pull into a serving base; every bad input is one line and leaves nothing half-written.

The archives here are tiny DCGANs built in the test and served from a local http.server on
127.0.0.1; tests/test_released_models.py covers the real releases of zoo/presets.json.
"""

import functools
import http.server
import json
import os
import shutil
import threading

import numpy as np
import pytest
import tensorflow as tf

import zoo
from export import presets as presets_cli
from zoo import presets

NAME = "tiny_dcgan"
Z = np.linspace(-1, 1, 2 * 100, dtype="float32").reshape(2, 100)


class Server:
    """``http.server`` over a directory on 127.0.0.1; counts the GET requests it answered."""

    def __init__(self, directory):
        self.requests = 0
        outer = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):
                outer.requests += 1
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(directory)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """A finished tiny run built into a preset with the CLI: (model, registry path, releases dir)."""
    root = tmp_path_factory.mktemp("release")
    run_dir = root / "run"
    run_dir.mkdir()
    model = zoo.build_model("dcgan", generator_width=8, discriminator_width=8, seed=1)
    model.compile(*zoo.get_spec("dcgan").make_optimizers())
    model.fit(np.random.default_rng(0).uniform(-1, 1, (8, 28, 28, 1)).astype("float32"),
              batch_size=4, epochs=1, verbose=0)
    model.save(run_dir / "model.keras")
    (run_dir / "config.json").write_text(json.dumps({
        "model": "dcgan", "dataset": "fashion_mnist", "hyperparameters": {"generator_width": 8},
        "training": {"steps_per_epoch": 2}}))
    (run_dir / "state.json").write_text(json.dumps({"epoch": 1}))
    (run_dir / "evaluations.jsonl").write_text(json.dumps(
        {"metrics": {"fid_fmnist_10k": 399.0}, "protocol": {"num_samples": 64}}) + "\n")
    registry, releases = root / "presets.json", root / "releases"
    code = presets_cli.main(["build", str(run_dir), "--name", NAME, "--releases", str(releases),
                             "--registry", str(registry), "--licence", "MIT (test)"])
    assert code == 0
    return model, str(registry), releases


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    return tmp_path / "keras" / presets.CACHE_SUBDIR


@pytest.fixture
def server(release):
    served = Server(release[2])
    yield served
    served.stop()


def load(release, url, **kwargs):
    registry = presets.load_registry(release[1])
    directory = presets.fetch(NAME, url, registry=registry)
    return presets.load_preset_dir(directory), directory


def test_build_writes_the_keras_hub_layout_and_a_registry_entry(release):
    model, registry_path, releases = release
    entry = presets.load_registry(registry_path)["presets"][NAME]
    archive = releases / f"{NAME}.tar.gz"
    assert entry["sha256"] == presets.sha256_of(archive) and entry["size_bytes"] == archive.stat().st_size
    assert entry["url"] == "{release_url}/tiny_dcgan.tar.gz"
    assert entry["metrics"] == {"fid_fmnist_10k": 399.0} and entry["licence"] == "MIT (test)"
    import tarfile

    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == ["MODEL_CARD.md", "config.json", "metadata.json", "model.weights.h5"]
        config = json.load(tar.extractfile("config.json"))
        metadata = json.load(tar.extractfile("metadata.json"))
    assert config["registered_name"] == "zoo>AdversarialModel" and "compile_config" not in config
    assert metadata["parameter_count"] == model.count_params() and metadata["kind"] == "unconditional"
    # weights only: the archive is smaller than the .keras file, which carries both Adam states
    assert entry["size_bytes"] < 0.6 * os.path.getsize(os.path.join(os.path.dirname(registry_path),
                                                                    "run", "model.keras"))


def test_fresh_download_then_cache_hit_with_the_server_stopped(release, cache, server):
    model, directory = load(release, server.url)
    assert server.requests == 1
    np.testing.assert_allclose(model.generator(Z), release[0].generator(Z), atol=1e-6)
    server.stop()
    again, directory_again = load(release, server.url)  # offline now: from the cache
    assert directory_again == directory and server.requests == 1
    np.testing.assert_allclose(again.generator(Z), release[0].generator(Z), atol=1e-6)


@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_a_bad_archive_is_a_hash_error_and_leaves_nothing_in_the_cache(release, cache, tmp_path, damage):
    data = (release[2] / f"{NAME}.tar.gz").read_bytes()
    data = data[: len(data) // 2] if damage == "truncated" else data[:100] + b"x" + data[101:]
    served_dir = tmp_path / "served"
    served_dir.mkdir()
    (served_dir / f"{NAME}.tar.gz").write_bytes(data)
    served = Server(served_dir)
    try:
        with pytest.raises(presets.PresetError, match="sha256 .*not the registry's.*nothing kept") as error:
            load(release, served.url)
    finally:
        served.stop()
    assert "\n" not in str(error.value)
    assert not cache.exists() or os.listdir(cache) == []


def test_unknown_preset_lists_the_presets(release):
    with pytest.raises(presets.PresetError, match=r"Unknown preset 'dcgan_mnist'; choose one of \['tiny_dcgan'\]"):
        presets.fetch("dcgan_mnist", registry=presets.load_registry(release[1]))


def test_missing_network_names_the_url_and_the_override(release, cache, server):
    url = server.url
    server.stop()  # nothing listens there any more
    with pytest.raises(presets.PresetError) as error:
        load(release, url)
    message = str(error.value)
    assert f"{url}/{NAME}.tar.gz" in message and "GAN_ZOO_RELEASE_URL" in message and "\n" not in message
    assert not cache.exists() or os.listdir(cache) == []


def test_the_release_url_comes_from_the_environment(release, cache, server, monkeypatch):
    monkeypatch.setenv("GAN_ZOO_RELEASE_URL", server.url)
    registry = presets.load_registry(release[1])
    assert presets.release_url(registry=registry) == server.url
    presets.fetch(NAME, registry=registry)
    assert server.requests == 1


def test_a_preset_of_another_kind_is_refused(release, cache, server, monkeypatch):
    monkeypatch.setattr(presets, "REGISTRY_PATH", release[1])
    with pytest.raises(presets.PresetError, match="is a unconditional model .*not image_to_image: "
                                                  "load it without kind= and use model.sample"):
        zoo.from_preset(NAME, kind="image_to_image", release_url=server.url)
    assert zoo.from_preset(NAME, kind="unconditional", release_url=server.url).name == "dcgan"


def test_pull_builds_the_next_version_once_and_refuses_a_taken_one(release, cache, server, tmp_path, capsys):
    base = tmp_path / "serving"
    args = ["pull", NAME, "--base", str(base), "--registry", release[1], "--release-url", server.url]
    assert presets_cli.main(args) == 0
    version = base / NAME / "1"
    assert (version / "saved_model.pb").is_file() and (base / NAME / "MODEL_CARD.md").is_file()
    served = tf.saved_model.load(str(version)).signatures["serving_default"](z=tf.constant(Z))["images"]
    np.testing.assert_allclose(served.numpy(), release[0].generator(Z), atol=1e-5)
    assert presets_cli.main(args) == 0  # same archive: nothing to do
    assert "already pulled as" in capsys.readouterr().out
    assert presets_cli.main(args + ["--version", "1"]) == 2
    assert "already exists; versions are immutable" in capsys.readouterr().err
    assert sorted(os.listdir(base / NAME)) == ["1", "MODEL_CARD.md", "presets.json"]  # no .tmp left


def test_list_shows_metrics_and_size(release, capsys):
    assert presets_cli.main(["list", "--registry", release[1]]) == 0
    out = capsys.readouterr().out
    assert NAME in out and "fid_fmnist_10k 399" in out and " MB" in out and "GAN_ZOO_RELEASE_URL" in out


def test_build_refuses_an_unevaluated_run(release, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(os.path.join(os.path.dirname(release[1]), "run"), run_dir)
    os.remove(run_dir / "evaluations.jsonl")
    assert presets_cli.main(["build", str(run_dir), "--name", "x", "--registry", str(tmp_path / "r.json"),
                             "--releases", str(tmp_path / "rel")]) == 2
    assert "has no evaluation: run `python -m training.evaluate" in capsys.readouterr().err
    assert not (tmp_path / "rel").exists() and not (tmp_path / "r.json").exists()
