"""One registry of GAN variants: a name maps to a builder, its paper and its training defaults.

Adding a variant is one module in ``zoo/models/`` whose builder is decorated with
``@register_model(...)``, and one import line in ``zoo/models/__init__.py``.
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass, field
from typing import Callable

import keras


@dataclass(frozen=True)
class ModelSpec:
    """A registered variant.

    ``build(**hyperparameters)`` returns an uncompiled ``keras.Model``; its keyword defaults
    are the paper's choices. ``training`` holds the paper's optimizers (Keras optimizer configs
    for ``g_optimizer`` / ``d_optimizer``) and batch size.
    """

    name: str
    build: Callable[..., keras.Model]
    paper: str
    training: dict = field(default_factory=dict)
    kind: str = "unconditional"  # or "image_to_image": what data it takes and how it exports
    paired: bool | None = None  # image_to_image only: trains on aligned pairs (True) or two domains
    # ``run_optimizers(steps_per_epoch, epochs, learning_rate)`` -> optimizer configs whose
    # schedule is laid out over a run of that length (CycleGAN's constant-then-linear decay).
    run_optimizers: Callable[..., dict] | None = None

    @property
    def defaults(self):
        """The builder's keyword arguments and their default values.

        A builder taking ``**stabilisers`` forwards them to ``AdversarialModel``, so the shared
        stabiliser options are hyper-parameters of it too.
        """
        from zoo.base import STABILISER_DEFAULTS

        parameters = inspect.signature(self.build).parameters.values()
        defaults = {}
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            defaults.update(STABILISER_DEFAULTS)
        defaults.update(
            {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}
        )
        return defaults

    def make_optimizers(self, **overrides):
        """Fresh (g_optimizer, d_optimizer) from the training defaults."""
        training = copy.deepcopy({**self.training, **overrides})  # Keras edits configs in place
        return (
            keras.optimizers.get(training["g_optimizer"]),
            keras.optimizers.get(training["d_optimizer"]),
        )


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(name, *, paper, training, kind="unconditional", paired=None, run_optimizers=None):
    """Decorator registering a builder function under ``name`` (see ``ModelSpec`` for the fields)."""

    def decorator(build):
        if name in _REGISTRY:
            raise ValueError(f"A model named {name!r} is already registered.")
        _REGISTRY[name] = ModelSpec(name=name, build=build, paper=paper, training=training, kind=kind,
                                    paired=paired, run_optimizers=run_optimizers)
        return build

    return decorator


def list_models(kind=None):
    """Registered names, optionally only those of one ``kind``."""
    return sorted(name for name, spec in _REGISTRY.items() if kind in (None, spec.kind))


def get_spec(name):
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"Unknown model {name!r}; choose one of {list_models()}.") from None


def build_model(name, **hyperparameters):
    """Build the registered model ``name`` with its defaults overridden by ``hyperparameters``."""
    spec = get_spec(name)
    unknown = sorted(set(hyperparameters) - set(spec.defaults))
    if unknown:
        raise ValueError(
            f"Unknown hyper-parameter(s) {unknown} for {name!r}; known: {sorted(spec.defaults)}."
        )
    return spec.build(**hyperparameters)


def adam(learning_rate, beta_1=0.9, beta_2=0.999):
    """Config of a Keras Adam optimizer, for ``training`` defaults."""
    return {
        "class_name": "Adam",
        "config": {"learning_rate": learning_rate, "beta_1": beta_1, "beta_2": beta_2},
    }


def rmsprop(learning_rate, rho=0.9):
    """Config of a Keras RMSprop optimizer, for ``training`` defaults (``rho``: decay of the
    squared-gradient average)."""
    return {"class_name": "RMSprop", "config": {"learning_rate": learning_rate, "rho": rho}}
