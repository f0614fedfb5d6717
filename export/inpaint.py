"""Inpaint image files and render latent walks with a trained unconditional GAN, from the shell.

    python -m export.inpaint inpaint runs/dcgan --images a.png b.png --masks ma.png mb.png --out inpainted/
    python -m export.inpaint inpaint runs/dcgan/model.keras --images *.png --masks hole.png
    python -m export.inpaint interpolate runs/dcgan --seeds 1 7 --steps 8 --out strip.png
    python -m export.inpaint interpolate runs/dcgan --seeds 1 7 --steps 32 --out walk.gif

MODEL is a run directory (its ``model.keras``) or a ``.keras`` checkpoint of an unconditional
zoo model (vanilla, DCGAN, WGAN, WGAN-GP, LSGAN). ``inpaint`` completes each image where its
mask is white (Yeh et al. 2016, ``zoo.inpainting``: latent search, then Poisson blending) and
writes ``OUT/<image name>.png``; masks are black (known) and white (missing) PNGs of the
images' size, one per image or one for all. ``interpolate`` walks from the code of one seed to
that of another (the codes of the served ``generate_from_seed``; spherical for a Gaussian
prior, linear for a uniform one, ``zoo.interpolation``) and writes a one-row strip (``.png``)
or an animation (``.gif``). Decoding, checks and the walk are the served signatures' own code
(``export/inpainting.py``), so a file gives what ``inpaint_bytes``/``interpolate`` would answer,
and bad input gets the same one-line error (exit code 2).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TF's start-up lines would bury the one-line error

import argparse  # noqa: E402
import io  # noqa: E402
import sys  # noqa: E402
from dataclasses import fields  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tqdm import tqdm  # noqa: E402

from export.inpainting import DEFAULT_MAX_INTERPOLATION_STEPS, decode_masks, seed_walk  # noqa: E402
from export.saved_model import encode_png_batch, load_trained_model  # noqa: E402
from export.serving.errors import tf_error_message  # noqa: E402
from export.translation import decode_batch  # noqa: E402
from training.files import atomic_write_bytes  # noqa: E402
from training.images import make_grid, to_uint8  # noqa: E402
from zoo.inpainting import Inpainter, InpaintingOptions, check_inputs  # noqa: E402
from zoo.kinds import kind_of_model  # noqa: E402

DEFAULT_BATCH_SIZE = 16
WALK_FORMATS = (".png", ".gif")


def load_unconditional(path):
    """The unconditional zoo model of a run directory or ``.keras`` file (else ValueError)."""
    model = load_trained_model(path)
    kind = kind_of_model(model).name
    if kind != "unconditional":
        raise ValueError(f"{path} is a {model.name} ({kind}) model; inpainting and interpolation "
                         "need an unconditional GAN (vanilla, dcgan, wgan, wgan_gp, lsgan).")
    return model


def _run(function, *args, context=""):
    """``function(*args)``, its INVALID_ARGUMENT turned into a one-line ValueError."""
    try:
        return function(*args)
    except tf.errors.InvalidArgumentError as error:
        raise ValueError(f"{context}{tf_error_message(error.message)}") from None


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def read_pairs(model, image_paths, mask_paths):
    """Decode and check each (image, mask) file pair as ``inpaint_bytes`` does: float images
    [N, H, W, C] in [-1, 1] and masks [N, H, W, 1]; a bad pair raises ValueError naming it."""
    if len(mask_paths) not in (1, len(image_paths)):
        raise ValueError(f"--masks: give one mask per image ({len(image_paths)}) or one for all; "
                         f"got {len(mask_paths)}.")
    mask_paths = list(mask_paths) * len(image_paths) if len(mask_paths) == 1 else list(mask_paths)
    channels = int(model.image_shape[-1])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)] * 2)
    def decode(image_bytes, mask_bytes):
        images = decode_batch(image_bytes, channels, "inpaint")
        return check_inputs(images, decode_masks(mask_bytes, "inpaint"), model.image_shape)

    images, masks = [], []
    for image_path, mask_path in zip(image_paths, mask_paths):
        image, mask = _run(decode, tf.constant([_read(image_path)]), tf.constant([_read(mask_path)]),
                           context=f"{image_path} with mask {mask_path}: ")
        images.append(image.numpy())
        masks.append(mask.numpy())
    return np.concatenate(images), np.concatenate(masks)


def output_paths(image_paths, out_dir):
    """``OUT/<name>.png`` per input; two inputs of one name would overwrite each other: refused."""
    names = [os.path.splitext(os.path.basename(path))[0] + ".png" for path in image_paths]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"--images: several inputs would be written as {', '.join(twice)} in "
                         f"{out_dir}; rename them or inpaint them in separate runs.")
    return [os.path.join(out_dir, name) for name in names]


def inpaint_files(model, image_paths, mask_paths, out_dir, options=None,
                  batch_size=DEFAULT_BATCH_SIZE):
    """Complete each image file where its mask is white; returns the written ``OUT/<name>.png``."""
    targets = output_paths(image_paths, out_dir)
    inpainter = Inpainter(model, options or InpaintingOptions())
    images, masks = read_pairs(model, image_paths, mask_paths)
    with tqdm(total=len(images), unit="image", desc="inpainting", disable=None) as progress:
        for start in range(0, len(images), batch_size):
            batch = slice(start, start + batch_size)
            completed = inpainter.complete(images[batch], masks[batch])["images"]
            for target, png in zip(targets[batch], encode_png_batch(tf.constant(completed)).numpy()):
                atomic_write_bytes(target, png)
            progress.update(len(completed))
    return targets


def walk_images(model, seed_a, seed_b, steps, max_steps=DEFAULT_MAX_INTERPOLATION_STEPS):
    """The served ``interpolate``'s images [steps, H, W, C] in [-1, 1] (ValueError if ``steps``
    is outside [2, max_steps])."""
    walk = tf.function(lambda a, b, n: seed_walk(model, a, b, n, max_steps))
    images = _run(walk, *(tf.constant(value, tf.int64) for value in (seed_a, seed_b, steps)))
    return images.numpy()


def write_walk(images, path, frame_ms=100):
    """A one-row strip (``.png``) or a looping animation (``.gif``) of ``images`` in [-1, 1]."""
    extension = os.path.splitext(path)[1].lower()
    if extension == ".png":
        atomic_write_bytes(path, tf.io.encode_png(make_grid(images, columns=len(images))).numpy())
        return path
    from PIL import Image

    pixels = to_uint8(images)
    frames = [Image.fromarray(frame[..., 0] if frame.shape[-1] == 1 else frame) for frame in pixels]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:],
                   duration=int(frame_ms), loop=0)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def check_walk_path(path):
    if os.path.splitext(path)[1].lower() not in WALK_FORMATS:
        raise ValueError(f"--out must end in .png (a strip) or .gif (an animation), got {path!r}.")


def build_parser():
    defaults = InpaintingOptions()
    parser = argparse.ArgumentParser(
        prog="python -m export.inpaint",
        description="Inpaint PNG/JPEG files (Yeh et al. 2016) or render a latent walk between two "
        "seeds with a trained unconditional GAN (run directory or .keras file).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    inpaint = commands.add_parser(
        "inpaint", help="fill the white regions of masks with the generator",
        description="Complete each image where its mask is white by latent search and Poisson "
        "blending; writes OUT/<image name>.png.")
    inpaint.add_argument("model", help="run directory (with model.keras) or a .keras file")
    inpaint.add_argument("--images", nargs="+", required=True,
                         help="PNG or JPEG files of the model's image size")
    inpaint.add_argument("--masks", nargs="+", required=True,
                         help="PNG masks of the images' size, white = missing, black = known "
                         "(nothing in between): one per image, or one for all")
    inpaint.add_argument("--out", default="inpainted", help="output directory (default: %(default)s)")
    inpaint.add_argument("--steps", type=int, default=defaults.steps,
                         help="Adam steps of the latent search (default: %(default)s; paper: 1500)")
    inpaint.add_argument("--restarts", type=int, default=defaults.restarts,
                         help="random starting codes per image; the best fit wins (default: %(default)s)")
    inpaint.add_argument("--learning-rate", type=float, default=defaults.learning_rate,
                         help="Adam's learning rate on z (default: %(default)s)")
    inpaint.add_argument("--perceptual-weight", type=float, default=defaults.perceptual_weight,
                         help="lambda of the discriminator's perceptual loss; 0 = context only "
                         "(default: %(default)s, the paper's)")
    inpaint.add_argument("--no-blend", dest="blend", action="store_false",
                         help="paste the generated pixels into the hole instead of Poisson blending")
    inpaint.add_argument("--seed", type=int, default=defaults.seed,
                         help="of the starting codes: the same seed gives the same result "
                         "(default: %(default)s)")
    inpaint.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                         help="images searched at once (default: %(default)s)")

    walk = commands.add_parser(
        "interpolate", help="render a walk between the codes of two seeds",
        description="Images along the latent path from the code of seed A to that of seed B "
        "(both included; the codes of the served generate_from_seed): a one-row PNG strip or a "
        "looping GIF.")
    walk.add_argument("model", help="run directory (with model.keras) or a .keras file")
    walk.add_argument("--seeds", nargs=2, type=int, required=True, metavar=("A", "B"),
                      help="the two end points")
    walk.add_argument("--steps", type=int, default=8,
                      help=f"images along the walk, 2 to {DEFAULT_MAX_INTERPOLATION_STEPS} (the "
                      "served limit; default: %(default)s)")
    walk.add_argument("--out", required=True, help="strip.png or walk.gif")
    walk.add_argument("--frame-ms", type=int, default=100,
                      help="GIF: milliseconds per frame (default: %(default)s)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if args.command == "inpaint":
            if args.batch_size < 1:
                raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}.")
            options = InpaintingOptions(**{field.name: getattr(args, field.name)
                                           for field in fields(InpaintingOptions)
                                           if hasattr(args, field.name)})
            model = load_unconditional(args.model)
            for path in inpaint_files(model, args.images, args.masks, args.out, options,
                                      args.batch_size):
                print(path)
        else:
            check_walk_path(args.out)
            if args.frame_ms < 1:
                raise ValueError(f"--frame-ms must be >= 1, got {args.frame_ms}.")
            model = load_unconditional(args.model)
            print(write_walk(walk_images(model, *args.seeds, args.steps), args.out, args.frame_ms))
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
