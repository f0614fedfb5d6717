"""Inpainting measured on held-out Fashion-MNIST (docs/inpainting.md): the zoo's latent search
(Yeh et al. 2016, ``zoo.inpainting``) against scikit-image's biharmonic inpainting and a
mean-colour fill, with the paper's ablations, and the time per image of the served signature.

    python bench/inpainting.py --model runs/dcgan/model.keras [--num-images 64]
        [--first-image 0] [--window 7] [--grid-dir docs/images]
        [--json-out runs/inpainting/results.json]

``--num-images`` images of the Fashion-MNIST test split from ``--first-image`` on (the models
train on the train split; a setting tuned on one range is confirmed on another) get three masks: ``centre`` (the middle 14x14 square, a quarter of the image),
``blocks`` (five 7x7 squares at random places, seeded per image) and ``half`` (the left half
of even-numbered images, the right half of odd ones). Per mask and method, over the images:

- PSNR (dB) and SSIM of the filled region only: the mean squared error over the hole's pixels,
  and the mean of scikit-image's SSIM map (7x7 windows) over the hole's pixels, intensities in
  [0, 1];
- the classification accuracy of the zoo's Fashion-MNIST evaluator
  (``training.feature_networks``) on the completed images, with its binomial standard error;
  the accuracy on the unmasked originals is the ceiling;
- the zoo's accuracy minus biharmonic's on the same images, with its paired standard error
  and the counts of images only one of them gets right (the comparison the issue's bar is
  about; paired, it is tighter than the two accuracies' own error bars);
- milliseconds per image in this process (the zoo's searches run batched, ``--batch-size``,
  after one untimed call that traces them).

Methods: ``mean`` (the hole filled with the mean of the image's known pixels), ``biharmonic``
(``skimage.restoration.inpaint_biharmonic``), ``zoo`` (the served options: contextual +
perceptual loss, Poisson blending), ``zoo, no blending`` (the same search, ``G(z)`` pasted into
the hole) and ``zoo, lambda 0`` (a search on the contextual loss alone, blended).

Then the model is exported (``export.saved_model.export_model``, to a temporary directory) and
its ``inpaint`` signature, loaded with ``tf.saved_model.load`` (what TF Serving runs, without
the network), is timed on centre masks: the median over ``--repeats`` calls per batch size,
after one warm-up call. Prints markdown tables, writes the JSON and one example grid per mask
(``inpainting_<mask>.png``: masked input with the hole in red, biharmonic, zoo, original).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from skimage.metrics import structural_similarity  # noqa: E402
from skimage.restoration import inpaint_biharmonic  # noqa: E402
from tqdm import tqdm  # noqa: E402

from export.saved_model import ExportError, export_model, load_trained_model  # noqa: E402
from training import data  # noqa: E402
from training.feature_networks import FeatureNetworkError, load_feature_network  # noqa: E402
from training.files import atomic_write_bytes, atomic_write_json  # noqa: E402
from training.images import make_grid  # noqa: E402
from zoo.inpainting import Inpainter, InpaintingOptions, paste  # noqa: E402

DATASET = "fashion_mnist"
GRID_EXAMPLES = 8
GRID_SCALE = 3  # nearest-neighbour upscaling of the 28-pixel images, for the docs
HOLE_COLOUR = (1.0, -0.6, -0.6)  # red in [-1, 1]
METHODS = ("mean", "biharmonic", "zoo", "zoo, no blending", "zoo, lambda 0")


# --- Masks (1 = missing) ------------------------------------------------------------------------


def centre_masks(count, size, seed=0):
    """The middle (size/2)^2 square: a quarter of the image."""
    masks = np.zeros((count, size, size, 1), np.float32)
    masks[:, size // 4:size // 4 + size // 2, size // 4:size // 4 + size // 2] = 1.0
    return masks


def block_masks(count, size, seed=0, blocks=5, side=7):
    """``blocks`` squares of ``side`` pixels at uniform random places (may overlap), per image
    from ``seed`` and its index."""
    masks = np.zeros((count, size, size, 1), np.float32)
    for index in range(count):
        rng = np.random.default_rng([seed, index])
        for top, left in rng.integers(0, size - side + 1, (blocks, 2)):
            masks[index, top:top + side, left:left + side] = 1.0
    return masks


def half_masks(count, size, seed=0):
    """The left half of even-numbered images, the right half of odd ones."""
    masks = np.zeros((count, size, size, 1), np.float32)
    masks[0::2, :, :size // 2] = 1.0
    masks[1::2, :, size // 2:] = 1.0
    return masks


MASKS = {"centre": centre_masks, "blocks": block_masks, "half": half_masks}


# --- Metrics of the filled region ---------------------------------------------------------------


def hole_psnr(completed, originals, masks):
    """Per image: PSNR (dB) over the hole's pixels, intensities in [0, 1] (``inf`` if exact)."""
    hole = np.broadcast_to(masks, originals.shape)
    squared = ((completed - originals) / 2.0) ** 2 * hole  # [-1, 1] -> [0, 1]: errors halve
    mse = squared.sum(axis=(1, 2, 3)) / hole.sum(axis=(1, 2, 3))
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(1.0 / mse)


def hole_ssim(completed, originals, masks):
    """Per image: the mean of scikit-image's SSIM map (7x7 windows) over the hole's pixels."""
    values = []
    for output, original, mask in zip(completed, originals, masks):
        _, ssim_map = structural_similarity((original + 1) / 2, (output + 1) / 2, data_range=1.0,
                                            channel_axis=-1, full=True)
        values.append(ssim_map[np.broadcast_to(mask, ssim_map.shape) == 1].mean())
    return np.asarray(values)


def summary(completed, originals, masks, correct, seconds):
    """``correct``: per image, whether the evaluator classifies ``completed`` right."""
    accuracy = float(correct.mean())
    return {"psnr": float(hole_psnr(completed, originals, masks).mean()),
            "ssim": float(hole_ssim(completed, originals, masks).mean()),
            "accuracy": accuracy,
            "accuracy_standard_error": float(np.sqrt(accuracy * (1 - accuracy) / len(correct))),
            "seconds_per_image": seconds / len(correct)}


def paired_comparison(correct, baseline_correct):
    """The accuracy difference of two methods on the same images and its paired standard error
    (the standard error of the mean per-image difference, which only the discordant images
    drive), with the counts of images only one of the two gets right."""
    correct, baseline_correct = np.asarray(correct, bool), np.asarray(baseline_correct, bool)
    difference = correct.astype(np.float64) - baseline_correct
    error = difference.std(ddof=1) / np.sqrt(len(difference)) if len(difference) > 1 else float("nan")
    return {"difference": float(difference.mean()), "standard_error": float(error),
            "only_this_right": int((correct & ~baseline_correct).sum()),
            "only_baseline_right": int((baseline_correct & ~correct).sum())}


# --- The methods --------------------------------------------------------------------------------


def mean_fill(images, masks):
    """The hole filled with the mean of each image's known pixels (per channel)."""
    known = 1.0 - masks
    means = (images * known).sum(axis=(1, 2), keepdims=True) / known.sum(axis=(1, 2), keepdims=True)
    return known * images + masks * means


def biharmonic(images, masks, progress):
    completed = []
    for image, mask in zip(images, masks):
        filled = inpaint_biharmonic(image, mask[..., 0].astype(bool), channel_axis=-1)
        completed.append(np.clip(filled, -1.0, 1.0))
        progress.update(1)
    return np.asarray(completed, np.float32)


def search(inpainter, images, masks, batch_size, progress):
    """``(completed, generated)`` of ``inpainter`` over ``images`` in batches."""
    completed, generated = [], []
    for start in range(0, len(images), batch_size):
        result = inpainter.complete(images[start:start + batch_size], masks[start:start + batch_size])
        completed.append(result["images"])
        generated.append(result["generated"])
        progress.update(len(result["images"]))
    return np.concatenate(completed), np.concatenate(generated)


def timed(function, *args):
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started


def measure(model, images, labels, network, options, batch_size, mask_names=tuple(MASKS),
            lambda_0=True):
    """``{mask: {method: summary}}`` and ``{mask: {method: completed images}}`` for the masks
    named in ``mask_names``; without ``lambda_0``, no ``zoo, lambda 0`` search (half the time)."""
    searches = {"zoo": Inpainter(model, options)}
    if lambda_0:
        searches["zoo, lambda 0"] = Inpainter(model, replace(options, perceptual_weight=0.0))
    for inpainter in searches.values():  # trace once, outside the timings
        inpainter.complete(images[:1], centre_masks(1, images.shape[1]))
    results, outputs = {}, {}
    total = len(mask_names) * len(images) * (1 + len(searches))  # biharmonic, the searches
    with tqdm(total=total, unit="image", desc="inpainting") as progress:
        for mask_name in mask_names:
            masks = MASKS[mask_name](len(images), images.shape[1])
            completed, seconds = {}, {}
            completed["mean"], seconds["mean"] = timed(mean_fill, images, masks)
            completed["biharmonic"], seconds["biharmonic"] = timed(biharmonic, images, masks, progress)
            generated = {}
            for method, inpainter in searches.items():
                (completed[method], generated[method]), seconds[method] = timed(
                    search, inpainter, images, masks, batch_size, progress)
            # The paper's "without blending": the same codes, G(z) pasted (timed: the same search).
            completed["zoo, no blending"] = paste(images, generated["zoo"], masks).numpy()
            seconds["zoo, no blending"] = seconds["zoo"]
            methods = [method for method in METHODS if method in completed]
            known = np.broadcast_to(masks == 0, images.shape)
            for method in methods:  # every method must keep the context as it is
                if not np.allclose(completed[method][known], images[known], atol=1e-5):
                    raise RuntimeError(f"{method} changed known pixels ({mask_name} masks).")
            correct = {method: network.predict_classes(completed[method]) == labels
                       for method in methods}
            results[mask_name] = {
                "missing_fraction": float(masks.mean()),
                **{method: summary(completed[method], images, masks, correct[method],
                                   seconds[method]) for method in methods},
                "zoo_vs_biharmonic": paired_comparison(correct["zoo"], correct["biharmonic"])}
            outputs[mask_name] = {"masks": masks, **completed}
    return results, outputs


def served_timings(model, images, batches, repeats):
    """Median seconds per call of the exported ``inpaint`` signature, per batch size."""
    masks_of = MASKS["centre"]
    timings = {}
    with tempfile.TemporaryDirectory(prefix="inpainting-bench-") as base:
        signature = tf.saved_model.load(export_model(model, base, "inpaint_bench", 1)).signatures["inpaint"]
        call = lambda x: signature(images=tf.constant(x), masks=tf.constant(masks_of(len(x), x.shape[1])))  # noqa: E731
        call(images[:1])  # warm-up
        with tqdm(total=len(batches) * repeats, unit="call", desc="served inpaint") as progress:
            for batch in batches:
                chunk = np.resize(images, (batch,) + images.shape[1:])  # repeats images if few
                seconds = []
                for _ in range(repeats):
                    seconds.append(timed(call, chunk)[1])
                    progress.update(1)
                median = statistics.median(seconds)
                timings[str(batch)] = {"median_seconds_per_call": median,
                                       "seconds_per_image": median / batch, "calls": seconds}
    return timings


# --- Output -------------------------------------------------------------------------------------


def example_grid(path, originals, outputs, count=GRID_EXAMPLES):
    """Rows of (masked input, biharmonic, zoo, original), RGB, the hole of the input in red."""
    rgb = lambda x: np.repeat(x[:count], 3, axis=-1) if x.shape[-1] == 1 else x[:count]  # noqa: E731
    hole = outputs["masks"][:count] == 1
    masked = np.where(hole, np.asarray(HOLE_COLOUR, np.float32), rgb(originals))
    columns = [masked, rgb(outputs["biharmonic"]), rgb(outputs["zoo"]), rgb(originals)]
    tiles = np.stack(columns, axis=1).reshape((-1,) + masked.shape[1:])
    grid = make_grid(tiles, columns=len(columns))
    grid = np.repeat(np.repeat(grid, GRID_SCALE, axis=0), GRID_SCALE, axis=1)
    atomic_write_bytes(path, tf.io.encode_png(grid).numpy())
    return path


def markdown(report):
    lines = ["| mask (missing) | method | PSNR of the hole (dB) ↑ | SSIM of the hole ↑ | "
             "evaluator accuracy ↑ | ms / image |", "|---|---|---:|---:|---:|---:|"]
    for mask_name, result in report["results"].items():
        for method in (method for method in METHODS if method in result):
            m = result[method]
            lines.append(f"| {mask_name} ({result['missing_fraction']:.0%}) | {method} | "
                         f"{m['psnr']:.2f} | {m['ssim']:.3f} | {m['accuracy']:.3f} ± "
                         f"{m['accuracy_standard_error']:.3f} | {1000 * m['seconds_per_image']:,.1f} |")
    lines.append("")
    for mask_name, result in report["results"].items():
        paired = result["zoo_vs_biharmonic"]
        lines.append(f"{mask_name}: zoo - biharmonic accuracy {paired['difference']:+.3f} ± "
                     f"{paired['standard_error']:.3f} (paired standard error); only the zoo right "
                     f"on {paired['only_this_right']} images, only biharmonic on "
                     f"{paired['only_baseline_right']}.")
    lines += ["", f"Unmasked originals: evaluator accuracy {report['original_accuracy']:.3f}, on "
              f"{report['num_images']} test images from index {report['first_image']} on.", "",
              "| served `inpaint`, batch | median s / call | s / image |", "|---:|---:|---:|"]
    for batch, timing in report["served"].items():
        lines.append(f"| {batch} | {timing['median_seconds_per_call']:.2f} | "
                     f"{timing['seconds_per_image']:.2f} |")
    return "\n".join(lines)


def build_parser():
    defaults = InpaintingOptions()
    parser = argparse.ArgumentParser(
        prog="python bench/inpainting.py",
        description="PSNR/SSIM of the hole and evaluator accuracy of inpainted Fashion-MNIST test "
        "images (zoo latent search, its ablations, biharmonic, mean fill) and the served "
        "signature's time per image; markdown to stdout, JSON and example grids to files.")
    parser.add_argument("--model", required=True,
                        help="run directory (with model.keras) or a .keras checkpoint of an "
                        "unconditional model trained on Fashion-MNIST")
    parser.add_argument("--num-images", type=int, default=64,
                        help="test images, from --first-image on (default: %(default)s)")
    parser.add_argument("--first-image", type=int, default=0,
                        help="index of the first test image measured, so that settings tuned on "
                        "one range can be confirmed on fresh images (default: %(default)s)")
    parser.add_argument("--masks", nargs="+", choices=tuple(MASKS), default=list(MASKS),
                        help="kinds of mask to measure (default: all)")
    parser.add_argument("--steps", type=int, default=defaults.steps,
                        help="Adam steps of the quality runs (default: %(default)s, the served "
                        "value; the timed export always uses the served options)")
    parser.add_argument("--restarts", type=int, default=defaults.restarts,
                        help="starting codes per image of the quality runs (default: %(default)s)")
    parser.add_argument("--window", type=int, default=defaults.window,
                        help="side of the importance-weight window of the quality runs (odd; "
                        "default: %(default)s, the served value)")
    parser.add_argument("--lambda-0-ablation", action=argparse.BooleanOptionalAction, default=True,
                        help="also search without the perceptual term (the paper's ablation; "
                        "--no-lambda-0-ablation halves the time; default: on)")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="images per latent search (default: %(default)s)")
    parser.add_argument("--timing-batches", type=int, nargs="+", default=[1, 8],
                        help="batch sizes at which the served signature is timed (default: 1 8)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed calls per batch size; the median is reported (default: %(default)s)")
    parser.add_argument("--grid-dir", default="runs/inpainting",
                        help="where inpainting_<mask>.png go (default: %(default)s; the docs' are "
                        "docs/images)")
    parser.add_argument("--json-out", default="runs/inpainting/results.json",
                        help="default: %(default)s")
    parser.add_argument("--data-dir", default=None, help="tfds data dir (default: tfds's)")
    return parser


def check_arguments(args):
    for name in ("num_images", "steps", "restarts", "window", "batch_size", "repeats"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}.")
    if min(args.timing_batches) < 1:
        raise ValueError(f"--timing-batches must be >= 1, got {args.timing_batches}.")
    if args.first_image < 0:
        raise ValueError(f"--first-image must be >= 0, got {args.first_image}.")
    test_images = data.num_examples(DATASET, "test")
    if args.first_image + args.num_images > test_images:
        raise ValueError(f"--first-image + --num-images must be at most {test_images} (the test "
                         f"split), got {args.first_image} + {args.num_images}.")


def held_out_images(count, data_dir=None, first=0):
    """``count`` Fashion-MNIST test images from index ``first`` on, in [-1, 1], and their labels."""
    batches = data.load_images(DATASET, split=f"test[{first}:{first + count}]", batch_size=count,
                               data_dir=data_dir,
                               shuffle=False, drop_remainder=False, with_labels=True)
    images, labels = next(iter(batches))
    return images.numpy(), labels.numpy()


def run(args, argv):
    model = load_trained_model(args.model)
    image_shape = data.get_dataset_spec(DATASET).image_shape
    if tuple(model.image_shape) != tuple(image_shape):
        raise ValueError(f"{args.model} makes {tuple(model.image_shape)} images, not Fashion-MNIST's "
                         f"{tuple(image_shape)}: pass a model trained on fashion_mnist.")
    options = replace(InpaintingOptions(), steps=args.steps, restarts=args.restarts,
                      window=args.window)
    network = load_feature_network(DATASET)
    images, labels = held_out_images(args.num_images, args.data_dir, args.first_image)
    results, outputs = measure(model, images, labels, network, options, args.batch_size,
                               args.masks, lambda_0=args.lambda_0_ablation)
    report = {
        "model": os.path.abspath(args.model), "num_images": len(images),
        "first_image": args.first_image,
        "options": asdict(options), "served_options": asdict(InpaintingOptions()),
        "original_accuracy": float((network.predict_classes(images) == labels).mean()),
        "results": results,
        "served": served_timings(model, images, args.timing_batches, args.repeats),
        "feature_network": network.name, "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "versions": {"tensorflow": tf.__version__},
        "command": " ".join(["python", "bench/inpainting.py", *argv]),
    }
    grids = [example_grid(os.path.join(args.grid_dir, f"inpainting_{name}.png"), images, out)
             for name, out in outputs.items()]
    atomic_write_json(args.json_out, report)
    return report, grids


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        check_arguments(args)
        report, grids = run(args, sys.argv[1:] if argv is None else list(argv))
    except (ValueError, OSError, ExportError, FeatureNetworkError,
            data.DatasetNotPreparedError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(markdown(report))
    print(f"\nWrote {args.json_out} and {', '.join(grids)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
