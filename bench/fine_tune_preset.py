"""Fine-tune a pretrained unconditional preset on one Fashion-MNIST class; measure the class shift.

    python bench/fine_tune_preset.py [--preset dcgan_fashion_mnist] [--label 7] [--steps 300]
                                     [--batch-size 64] [--num-samples 2000] [--images docs/images]

Loads the preset (``zoo.from_preset``), compiles it with its paper's optimizers (fresh state: a
preset carries no optimizer state), fits it on the real train images of class ``--label`` only
(7 = sneaker) and reports, before and after, the share of ``--num-samples`` generated images
that the zoo's evaluator (``training.feature_networks``, the FID network) assigns to each
class, plus grids of 64 samples from the same noise. Printed as one JSON record (docs/fine_tuning.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
           "Ankle boot")


def one_class(label, batch_size, data_dir=None, seed=0):
    """Repeated batches of the train images of Fashion-MNIST class ``label`` (28x28, [-1, 1])."""
    import tensorflow as tf

    from training.data import load_images

    dataset = load_images("fashion_mnist", "train", batch_size=1024, data_dir=data_dir, seed=seed,
                          drop_remainder=False, with_labels=True).unbatch()
    dataset = dataset.filter(lambda image, y: tf.equal(y, label)).map(lambda image, y: image)
    return dataset.shuffle(6000, seed=seed).repeat().batch(batch_size, drop_remainder=True)


def class_shares(model, network, num_samples, seed=0):
    """Share of ``num_samples`` generated images the evaluator puts in each class (fixed noise)."""
    images = np.concatenate([np.asarray(model.sample(min(500, num_samples - start), seed=seed + start))
                             for start in range(0, num_samples, 500)])
    return np.bincount(network.predict_classes(images), minlength=network.num_classes) / len(images)


def fine_tune(model, label, steps, batch_size, data_dir=None, seed=0):
    import zoo

    model.compile(*zoo.get_spec(model.name).make_optimizers())
    return model.fit(one_class(label, batch_size, data_dir, seed), steps_per_epoch=steps, epochs=1,
                     verbose=0).history


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="dcgan_fashion_mnist")
    parser.add_argument("--label", type=int, default=7, help="Fashion-MNIST class (7: sneaker)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-samples", type=int, default=2000)
    parser.add_argument("--images", default=None, help="write before/after grids here")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)

    import zoo
    from training.feature_networks import load_feature_network
    from training.images import save_grid

    network = load_feature_network("fashion_mnist")
    model = zoo.from_preset(args.preset, kind="unconditional")
    z = np.asarray(model.sample_latent(64, seed=1234))
    grids = {"before": np.asarray(model.generator(z, training=False))}
    before = class_shares(model, network, args.num_samples)
    start = time.perf_counter()
    history = fine_tune(model, args.label, args.steps, args.batch_size, args.data_dir)
    seconds = time.perf_counter() - start
    after = class_shares(model, network, args.num_samples)
    grids["after"] = np.asarray(model.generator(z, training=False))
    if args.images:
        for when, images in grids.items():
            save_grid(os.path.join(args.images, f"fine_tune_{args.preset}_{when}.png"), images, columns=8)
    print(json.dumps({
        "preset": args.preset, "label": args.label, "class": CLASSES[args.label], "steps": args.steps,
        "batch_size": args.batch_size, "num_samples": args.num_samples, "fit_seconds": round(seconds, 1),
        "share_before": round(float(before[args.label]), 4), "share_after": round(float(after[args.label]), 4),
        "shares_before": {c: round(float(s), 4) for c, s in zip(CLASSES, before)},
        "shares_after": {c: round(float(s), 4) for c, s in zip(CLASSES, after)},
        "last_losses": {k: round(float(v[-1]), 4) for k, v in history.items()},
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
