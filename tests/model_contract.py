"""Checks shared by the model contracts of tests/test_models.py and tests/test_image_to_image.py."""

import warnings

import keras


def reload_cleanly(path):
    """``keras.saving.load_model(path)``, asserting that compile ran and optimizer state loaded."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reloaded = keras.saving.load_model(path)
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "compile" in m or "Skipping variable loading" in m], messages
    return reloaded
