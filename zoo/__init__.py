"""GAN Zoo: generative adversarial networks for Keras 3 (TensorFlow backend).

``import zoo`` registers every model, layer and the adversarial base with Keras, so
``keras.saving.load_model("model.keras")`` works afterwards. ``zoo.from_preset(name)`` loads a
pretrained model (``zoo/presets.py``; ``python -m export.presets list``).
"""

from zoo import layers, losses  # noqa: F401  (registers serializable layers)
from zoo.base import AdversarialModel
from zoo.models import *  # noqa: F401,F403  (registers every variant)
from zoo.presets import from_preset, list_presets
from zoo.registry import build_model, get_spec, list_models, register_model

__all__ = ["AdversarialModel", "build_model", "from_preset", "get_spec", "list_models", "list_presets",
           "register_model"]
__version__ = "0.1.0"
