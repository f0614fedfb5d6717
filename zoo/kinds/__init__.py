"""Kinds of model: what differs between unconditional, image-to-image, super-resolution and
text-to-image GANs, each kind in one module.

A kind owns its training data, its sample grid, its metrics and its serving signatures. A model
names its kind once, in its registration (``@register_model(..., kind="image_to_image")``);
``training.train``, ``training.evaluate``, ``export.saved_model`` and the model cards ask
``get_kind`` and call the kind, so none of them branches on the kind of model (the keras-hub
idea of one task class per job, ``keras_hub/src/models/image_to_image.py``, applied to GANs).

Adding a kind is one module here that subclasses ``Kind`` and one line in ``KIND_MODULES``.
Kind modules import the training and export code they need; they are imported on first use,
so ``import zoo`` stays light.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import keras

import zoo.registry

# Kind name -> module defining ``KIND``, an instance of a ``Kind`` subclass.
KIND_MODULES = {
    "unconditional": "zoo.kinds.unconditional",
    "image_to_image": "zoo.kinds.image_to_image",
    "text_to_image": "zoo.kinds.text_to_image",
    "super_resolution": "zoo.kinds.super_resolution",
}


@dataclass(frozen=True)
class EvaluationRequest:
    """What ``python -m training.evaluate`` was asked for (options a kind may refuse)."""

    model_path: str
    dataset: str | None = None  # None: the kind's default (or the run directory's data set)
    num_samples: int | None = None
    seed: int = 0
    data_dir: str | None = None
    task: str | None = None
    crop_size: int | None = None
    run_config: dict | None = None  # the run directory's config.json, if the model has one


class Kind:
    """The interface every kind implements; the defaults are the unconditional kind's answers.

    ``spec`` arguments are ``zoo.registry.ModelSpec`` objects of the kind's models; ``config``
    is the resolved run configuration of ``training.train``; ``hyperparameters`` the model's.
    """

    name = "kind"

    # --- Data ------------------------------------------------------------------------------
    def datasets(self, spec):
        """Names of the data sets ``spec``'s model trains on (``--help``, error messages)."""
        raise NotImplementedError

    def data_hyperparameters(self, spec, dataset):
        """Hyper-parameters the data set fixes (image shape, input channels...); ValueError if
        ``dataset`` does not fit the model."""
        raise NotImplementedError

    def check_data_fits(self, spec, dataset, hyperparameters, data_hyperparameters):
        """ValueError if user-set ``hyperparameters`` contradict the data set's."""

    def num_train_examples(self, spec, dataset, hyperparameters):
        raise NotImplementedError

    def training_data(self, config, run_dir, images_per_step):
        """``(train batches, (held-out batches or None, steps or None), sample-grid callback)``."""
        raise NotImplementedError

    def initialise_from(self, model, run_dir):
        """Initialise ``model`` from a finished run (``--init-from``); kinds that cannot refuse."""
        raise ValueError(f"--init-from is not supported for {self.name} models.")

    # --- Evaluation ------------------------------------------------------------------------
    def evaluate(self, model, request):
        """A JSON-able record with ``metrics`` and ``protocol`` for a loaded model."""
        raise NotImplementedError

    # --- Serving ---------------------------------------------------------------------------
    def archive(self, model):
        """A ``keras.export.ExportArchive`` with the kind's serving signatures."""
        raise NotImplementedError

    def signature_lines(self, spec):
        """Markdown lines describing the exported signatures, for model cards."""
        raise NotImplementedError

    def recognises(self, signature_names):
        """True if a SavedModel with these signatures is an export of this kind."""
        raise NotImplementedError


def get_kind(name):
    """The ``Kind`` registered as ``name``."""
    try:
        module = KIND_MODULES[name]
    except KeyError:
        raise ValueError(f"Unknown kind of model {name!r}; known: {sorted(KIND_MODULES)}.") from None
    return importlib.import_module(module).KIND


def kind_of_spec(spec):
    return get_kind(spec.kind)


def kind_of_model(model):
    """The kind of a Keras zoo model (by its registered name) or of a loaded SavedModel (by its
    signatures)."""
    if isinstance(model, keras.Model):
        return kind_of_spec(zoo.registry.get_spec(model.name))
    signature_names = set(model.signatures)
    for name in KIND_MODULES:
        kind = get_kind(name)
        if kind.recognises(signature_names):
            return kind
    raise ValueError(f"not an export of the zoo: signatures {sorted(signature_names)} match no "
                     "kind of model.")
