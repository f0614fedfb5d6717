"""Rebuild a run directory from a committed SavedModel release, so its preset can be built.

    git archive d0efb8e saved_models | tar -x -C /tmp/old      # the releases as committed until then
    python bench/recover_run_from_release.py /tmp/old/saved_models/pix2pix_grey_to_colour runs/recovered/pix2pix_grey_to_colour
    python -m training.evaluate runs/recovered/pix2pix_grey_to_colour      # must match the card
    python -m export.presets build runs/recovered/pix2pix_grey_to_colour --name pix2pix_grey_to_colour

The image-to-image releases of session 2 outlived their run directories. Their model card keeps
the variant, data set and configuration, and their SavedModel keeps the generator's variables
(``ExportArchive``'s ``_all_variables``, names such as ``group_normalization_12/beta:0`` whose
numeric suffixes depend on what that process had built before). This script builds the variant
from the card's configuration and gives every generator variable the saved value of the same
layer type, occurrence and weight name, checking shapes (a CycleGAN generator ``generator_ab``
takes the variables its export signature ``a_to_b`` captures); the evaluation afterwards checks
the values (its figures must equal the card's). What the export did not keep cannot come back: the
discriminator(s) start from fresh initialisation, which the written ``config.json`` records as
``recovered_from`` so the preset says so.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CONFIG_BLOCK = re.compile(r"## Configuration\n```json\n(.*?)\n```", re.S)
WALL_TIME = re.compile(r"wall time: ([\d.]+) min .*?hardware: CPU only, (\d+) cores \((.*?)\)")
VARIABLE_NAME = re.compile(r"^(?P<layer>.+?)(?:_(?P<index>\d+))?/(?P<weight>[^/:]+)(?::\d+)?$")


def read_card(release_dir):
    """(variant, data set, configuration, wall-time match) from ``MODEL_CARD.md``."""
    with open(os.path.join(release_dir, "MODEL_CARD.md")) as f:
        card = f.read()
    variant = re.search(r"^`(\w+)`:", card, re.M).group(1)
    dataset = re.search(r"- data set: `(\w+)`", card).group(1)
    return variant, dataset, json.loads(CONFIG_BLOCK.search(card).group(1)), WALL_TIME.search(card)


def _keyed(names):
    """``name -> (layer type, occurrence rank, weight)``: occurrences ranked by numeric suffix."""
    parsed = {name: VARIABLE_NAME.match(name) for name in names}
    by_layer = defaultdict(set)
    for match in parsed.values():
        by_layer[match["layer"]].add(int(match["index"] or 0))
    ranks = {layer: {index: rank for rank, index in enumerate(sorted(indices))}
             for layer, indices in by_layer.items()}
    return {name: (m["layer"], ranks[m["layer"]][int(m["index"] or 0)], m["weight"])
            for name, m in parsed.items()}


def copy_generator_weights(saved_variables, model_variables):
    """Assign ``saved_variables`` (tf.Variables of the export) to ``model_variables`` (Keras)."""
    saved = {key: v for v, key in zip(saved_variables, _keyed([v.name for v in saved_variables]).values())}
    target = _keyed([v.path for v in model_variables])
    if len(saved) != len(saved_variables) or sorted(saved) != sorted(target.values()):
        raise SystemExit(f"error: the export's {len(saved_variables)} variables do not match the "
                         f"{len(model_variables)} generator variables of the card's configuration")
    for variable in model_variables:
        value = saved[target[variable.path]]
        if tuple(value.shape) != tuple(variable.shape):
            raise SystemExit(f"error: {variable.path}: saved shape {tuple(value.shape)} "
                             f"!= {tuple(variable.shape)}")
        variable.assign(value.numpy())


def exported_variables(export, generator_name):
    """The export's variables of generator ``generator_name``: all of them for a single generator,
    those captured by signature ``a_to_b`` for CycleGAN's ``generator_ab``."""
    direction = generator_name[len("generator_"):]
    if len(direction) == 2:
        return list(export.signatures[f"{direction[0]}_to_{direction[1]}"].variables)
    return list(export._all_variables)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("release_dir", help="saved_models/NAME (MODEL_CARD.md and numbered versions)")
    parser.add_argument("run_dir", help="run directory to write (must not exist)")
    args = parser.parse_args(argv)
    if os.path.exists(args.run_dir):
        raise SystemExit(f"error: {args.run_dir} exists; pass a new run directory")

    import tensorflow as tf

    import zoo
    from training.files import atomic_save_model, atomic_write_json

    variant, dataset, config, wall_time = read_card(args.release_dir)
    version = max(int(d) for d in os.listdir(args.release_dir) if d.isdigit())
    export = tf.saved_model.load(os.path.join(args.release_dir, str(version)))
    model = zoo.get_spec(variant).build(**config["hyperparameters"])
    generators = [layer for layer in model.layers if layer.name.startswith("generator")]
    fresh = [layer.name for layer in model.layers if layer not in generators and layer.trainable_weights]
    for generator in generators:
        copy_generator_weights(exported_variables(export, generator.name), generator.variables)

    staging = args.run_dir + ".partial"
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(os.path.join(staging, "samples"))
    atomic_save_model(model, os.path.join(staging, "model.keras"))
    atomic_write_json(os.path.join(staging, "config.json"), {
        "model": variant, "dataset": dataset, "data_dir": None, **config,
        "recovered_from": {"release": os.path.join(args.release_dir, str(version)),
                           "kept": [g.name for g in generators],
                           "fresh": fresh}})
    atomic_write_json(os.path.join(staging, "state.json"), {"epoch": config["training"]["epochs"]})
    if wall_time:
        minutes, cores, platform = wall_time.groups()
        atomic_write_json(os.path.join(staging, "run.json"), {
            "total_seconds": float(minutes) * 60,
            "sessions": [{"hardware": {"gpus": [], "cpu_count": int(cores), "platform": platform}}]})
    samples = os.path.join(args.release_dir, "samples.png")
    if os.path.exists(samples):
        shutil.copyfile(samples, os.path.join(staging, "samples", f"epoch_{config['training']['epochs']:03d}.png"))
    os.rename(staging, args.run_dir)
    print(f"{args.run_dir}: {variant} on {dataset}, generator weights of {args.release_dir}/{version}; "
          f"fresh: {fresh}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
