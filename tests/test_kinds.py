"""Kinds of model: every registered model's kind resolves and recognises its own exports."""

import pytest
import tensorflow as tf

import zoo
from export.saved_model import export_model
from training import train
from zoo.kinds import KIND_MODULES, get_kind, kind_of_model


@pytest.mark.parametrize("name", zoo.list_models())
def test_every_model_has_a_kind_with_data_sets_and_signature_lines(name):
    spec = zoo.get_spec(name)
    kind = get_kind(spec.kind)
    assert kind.name == spec.kind
    assert kind.datasets(spec) and kind.signature_lines(spec)


def test_unknown_kind_names_the_known_ones():
    with pytest.raises(ValueError, match="Unknown kind of model 'sound'; known: "):
        get_kind("sound")


def test_a_saved_model_is_recognised_by_exactly_its_kind(tmp_path):
    model = zoo.build_model("dcgan", latent_dim=8, generator_width=8, discriminator_width=8)
    loaded = tf.saved_model.load(export_model(model, str(tmp_path), "g"))
    assert kind_of_model(loaded).name == "unconditional"
    owners = [name for name in KIND_MODULES if get_kind(name).recognises(set(loaded.signatures))]
    assert owners == ["unconditional"]


def test_a_saved_model_of_no_kind_is_refused(tmp_path):
    module = tf.Module()
    module.f = tf.function(lambda x: {"y": x}, input_signature=[tf.TensorSpec([None], tf.float32)])
    tf.saved_model.save(module, str(tmp_path), signatures={"whatever": module.f})
    with pytest.raises(ValueError, match=r"signatures \['whatever'\] match no kind"):
        kind_of_model(tf.saved_model.load(str(tmp_path)))


def test_init_from_is_refused_in_one_line_where_the_kind_has_none(tmp_path, capsys):
    code = train.main(["dcgan", "--out", str(tmp_path / "run"), "--epochs", "1",
                       "--steps-per-epoch", "1", "--init-from", str(tmp_path / "other")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--init-from is not supported for unconditional" in err
    assert not (tmp_path / "run").exists()  # nothing written
