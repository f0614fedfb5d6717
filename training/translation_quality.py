"""Measured quality of the image-to-image GANs (pix2pix, CycleGAN) on held-out data.

**Paired tasks** (pix2pix; ``edges_to_photo``, ``grey_to_colour`` of ``training.image_pairs``):
``paired_quality`` scores a translation on every non-overlapping tile of the held-out photos
with L1, PSNR and SSIM, the per-pixel figures of Isola et al. 2017 (Table 1 compares L1 alone
with cGAN + L1; sec. 4.2 notes that such figures favour blurry L1 outputs, which is why the
paper adds perceptual studies and the FCN-score). Baselines put the numbers in context:
``input_baseline`` (the input itself, grey repeated to RGB), ``mean_colour_baseline`` (a
constant: the training photos' mean colour) and the same generator trained with L1 only
(``pix2pix(adversarial_weight=0)``, evaluated as any other model).

**Unpaired task** (CycleGAN; ``sneakers_and_boots``): ``cycle_quality`` on the Fashion-MNIST
test split. Translation accuracy is the share of translated images the zoo's Fashion-MNIST
evaluator assigns to the target class, the analogue of Zhu et al. 2017's FCN-score (sec. 5.1.1:
a classifier trained on real data judges the translations); cycle L1 is the paper's cycle
consistency term; FID (on the evaluator's features) compares the translated set with the real
target class. Each comes with the figure of the untranslated inputs, what "no translation" scores.

pix2pix keeps dropout on at test time (its only noise, Isola 2017 sec. 3.1), so its outputs are
random; the dropout masks' random state is saved with the model, so a freshly loaded model gives
the same figures every time.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from export.serving.errors import tf_error_message
from training import image_pairs, metrics
from training.evaluate import FeatureSet, _count_label
from training.feature_networks import load_feature_network
from zoo.models.image_to_image import check_image_size

PAIRED_TASKS = tuple(sorted(image_pairs.TASKS))
UNPAIRED_TASK = "sneakers_and_boots"
TASKS = PAIRED_TASKS + (UNPAIRED_TASK,)
TEST_IMAGES_PER_CLASS = 1000  # sneakers and ankle boots in the Fashion-MNIST test split
DEFAULT_CROP_SIZE = 64


# --- Paired tasks (pix2pix) ----------------------------------------------------------------------


def paired_quality(translate, task, crop_size=64, short_side=256, batch_size=32):
    """L1, PSNR and SSIM of ``translate(inputs) -> outputs`` on the held-out tiles of ``task``.

    ``l1`` is the mean ``|output - target|`` in [-1, 1] units, as in the pix2pix objective;
    ``saturation`` / ``target_saturation`` the mean HSV saturation of outputs and targets.
    ``psnr`` (dB) and ``ssim`` are ``tf.image.psnr``/``tf.image.ssim`` on images rescaled to
    [0, 1] with ``max_val=1.0``, averaged over tiles. A tile reproduced exactly has an infinite
    PSNR (``tf.image.psnr`` divides by an MSE of 0), so the mean is then ``inf``.
    """
    pairs = image_pairs.photo_pairs(task, "test", crop_size=crop_size, batch_size=batch_size,
                                    short_side=short_side, shuffle=False)
    l1, psnr, ssim, saturation, target_saturation = [], [], [], [], []
    for inputs, targets in pairs:
        outputs = tf.convert_to_tensor(translate(inputs), tf.float32)
        if outputs.shape != targets.shape:
            raise ValueError(f"{task}: the translation gives {tuple(outputs.shape)}, the targets "
                             f"are {tuple(targets.shape)}.")
        l1.append(tf.reduce_mean(tf.abs(outputs - targets), axis=[1, 2, 3]))
        outputs, targets = (outputs + 1) / 2, (targets + 1) / 2
        psnr.append(tf.image.psnr(outputs, targets, max_val=1.0))
        ssim.append(tf.image.ssim(outputs, targets, max_val=1.0))
        saturation.append(mean_saturation(outputs))
        target_saturation.append(mean_saturation(targets))
    l1, psnr, ssim, saturation, target_saturation = (
        np.concatenate(values).astype(np.float64)
        for values in (l1, psnr, ssim, saturation, target_saturation))
    return {"l1": float(l1.mean()), "psnr": float(psnr.mean()), "ssim": float(ssim.mean()),
            "saturation": float(saturation.mean()),
            "target_saturation": float(target_saturation.mean()), "tiles": len(l1)}


def mean_saturation(images):
    """Per-image mean HSV saturation of RGB ``images`` in [0, 1] (grey: 0).

    How colourful the outputs are, next to the targets' figure: L1 alone "encourages
    averaging" to "grayish, desaturated results" (Isola 2017, sec. 4.2 and fig. 7), which
    per-pixel scores reward and this exposes.
    """
    return tf.reduce_mean(tf.image.rgb_to_hsv(tf.clip_by_value(images, 0.0, 1.0))[..., 1], axis=[1, 2])


def input_baseline(task, crop_size=64, short_side=256, batch_size=32):
    """``paired_quality`` of the input itself as the output (1 channel repeated to RGB)."""
    return paired_quality(tf.image.grayscale_to_rgb, task, crop_size, short_side, batch_size)


def mean_colour_baseline(task, crop_size=64, short_side=256, batch_size=32):
    """``paired_quality`` of a constant output: the mean colour of the *training* photos.

    What a translator that ignores its input scores: below it, the output carries no
    information about the target that the data set's average colour does not.
    """
    photos = [image_pairs.load_photo(name, short_side) for name in image_pairs.photo_names("train")]
    pixels = np.concatenate([photo.reshape(-1, 3) for photo in photos]).astype(np.float64)
    colour = tf.constant(pixels.mean(axis=0) / 127.5 - 1.0, tf.float32)

    def constant(inputs):
        return tf.broadcast_to(colour, tf.concat([tf.shape(inputs)[:3], [3]], axis=0))

    return paired_quality(constant, task, crop_size, short_side, batch_size)


# --- Unpaired task (CycleGAN) --------------------------------------------------------------------


def _class_batches(label, split, count, data_dir, batch_size):
    """The first ``count`` images of class ``label`` in ``split``, 32x32 as in training."""
    return image_pairs.fashion_mnist_class(label, split, image_size=32, data_dir=data_dir,
                                           shuffle=False).take(count).batch(batch_size)


def _unpadded(images):
    """32x32 training images back to Fashion-MNIST's 28x28, for the evaluator."""
    return np.asarray(images)[:, 2:30, 2:30, :]


def _translated(translate_ab, translate_ba, label, count, data_dir, batch_size):
    """Real, translated (both cropped to 28x28) and the cycle L1 of ``count`` test images of ``label``."""
    real, translated, cycle_error = [], [], []
    for batch in _class_batches(label, "test", count, data_dir, batch_size):
        fake = tf.convert_to_tensor(translate_ab(batch), tf.float32)
        back = tf.convert_to_tensor(translate_ba(fake), tf.float32)
        cycle_error.append(tf.reduce_mean(tf.abs(back - batch), axis=[1, 2, 3]).numpy())
        real.append(_unpadded(batch))
        translated.append(_unpadded(fake))
    return real, translated, float(np.concatenate(cycle_error).mean())


def _real_train(label, count, data_dir, batch_size):
    """``count`` training images of ``label``, cropped to 28x28 (for the FID floor)."""
    return [_unpadded(batch) for batch in _class_batches(label, "train", count, data_dir, batch_size)]


def cycle_quality(translate_ab, translate_ba, num_samples=1000, data_dir=None, batch_size=100,
                  network=None):
    """Translation accuracy, cycle L1 and FID of a sneaker (A) <-> ankle boot (B) translator pair.

    On the first ``num_samples`` (at most 1,000) test images of each class, padded to 32x32 as
    in training. ``accuracy_a_to_b``: share of translated sneakers the evaluator (``network``,
    default Fashion-MNIST's) classifies as ankle boots, ``source_accuracy_a_to_b`` the same share
    for the real sneakers (and the reverse for ``b_to_a``). ``cycle_l1_a`` = mean
    ``|F(G(a)) - a|`` on the 32x32 images in [-1, 1] units (``cycle_l1_b`` likewise).
    ``fid_<net>_<n>_a_to_b``: FID of the translated sneakers against the real boots;
    ``fid_<net>_<n>_real_a_vs_real_b``: real sneakers against real boots, what an identity
    translation scores in both directions; ``fid_<net>_<n>_floor_b``: as many real *training*
    boots against the test boots, the best a translation to boots can score at this sample
    size (``floor_a`` likewise for sneakers).
    """
    if not 2 <= num_samples <= TEST_IMAGES_PER_CLASS:
        raise ValueError(f"num_samples must be in [2, {TEST_IMAGES_PER_CLASS}] (the test images "
                         f"per class), got {num_samples}.")
    network = network or load_feature_network("fashion_mnist")
    a, b = image_pairs.SNEAKER, image_pairs.ANKLE_BOOT
    real_a, fake_b, cycle_a = _translated(translate_ab, translate_ba, a, num_samples, data_dir, batch_size)
    real_b, fake_a, cycle_b = _translated(translate_ba, translate_ab, b, num_samples, data_dir, batch_size)
    train_a, train_b = (_real_train(label, num_samples, data_dir, batch_size) for label in (a, b))
    sets = {name: FeatureSet(network, batches) for name, batches in
            (("real_a", real_a), ("real_b", real_b), ("fake_a", fake_a), ("fake_b", fake_b),
             ("train_a", train_a), ("train_b", train_b))}

    def share(name, label):
        return float(np.mean(np.argmax(sets[name].probabilities, axis=1) == label))

    def fid(x, y):
        x, y = sets[x].moments, sets[y].moments
        return float(metrics.frechet_distance(x.mean, x.covariance, y.mean, y.covariance))

    suffix = f"{network.name}_{_count_label(sets['real_a'].count)}"
    return {
        "accuracy_a_to_b": share("fake_b", b), "accuracy_b_to_a": share("fake_a", a),
        "source_accuracy_a_to_b": share("real_a", b), "source_accuracy_b_to_a": share("real_b", a),
        "cycle_l1_a": cycle_a, "cycle_l1_b": cycle_b,
        f"fid_{suffix}_a_to_b": fid("fake_b", "real_b"),
        f"fid_{suffix}_b_to_a": fid("fake_a", "real_a"),
        f"fid_{suffix}_real_a_vs_real_b": fid("real_a", "real_b"),
        f"fid_{suffix}_floor_a": fid("train_a", "real_a"),
        f"fid_{suffix}_floor_b": fid("train_b", "real_b"),
    }


# --- Models ----------------------------------------------------------------------------------------


def translators_of(model):
    """Name -> ``translate(images)`` of a loaded model, or None if it does not translate images.

    ``model`` is a Keras pix2pix or CycleGAN (``{"translate"}`` or ``{"a_to_b", "b_to_a"}``, the
    generators called with ``training=False``) or a SavedModel loaded by ``tf.saved_model.load``
    with the signatures of ``export.translation`` (pix2pix's is ``serving_default``).
    """
    if hasattr(model, "translators"):
        return {name: _keras_translate(g) for name, g in model.translators.items()}
    signatures = getattr(model, "signatures", {})
    if "a_to_b" in signatures:
        return {name: _signature_translate(signatures[name]) for name in ("a_to_b", "b_to_a")}
    if "translate_bytes" in signatures:
        return {"translate": _signature_translate(signatures["serving_default"])}
    return None


def _keras_translate(generator):
    return lambda images: generator(images, training=False)


def _signature_translate(signature):
    return lambda images: signature(images=tf.convert_to_tensor(images, tf.float32))["images"]


def load_translators(model_path):
    """``translators_of`` the model at ``model_path`` (run directory, ``.keras`` file or SavedModel)."""
    from training.evaluate import load_model

    translators = translators_of(load_model(model_path)[0])
    if translators is None:
        raise ValueError(f"{model_path} is not an image-to-image model (pix2pix or CycleGAN).")
    return translators


def _channels(model):
    """(input, output) channels of the model's default translation."""
    if hasattr(model, "translators"):
        generator = next(iter(model.translators.values()))
        return int(generator.input_shape[-1]), int(generator.output_shape[-1])
    signature = model.signatures["serving_default"]
    return (int(signature.structured_input_signature[1]["images"].shape[-1]),
            int(signature.structured_outputs["images"].shape[-1]))


def training_size(model):
    """The model's training crop size if known: CycleGAN's ``image_shape``; for pix2pix the U-Net's
    total stride, which equals the training size for the square power-of-two sizes the zoo uses."""
    if getattr(model, "image_shape", None):
        return int(model.image_shape[0])
    stride = getattr(model, "generator_stride", None)
    return int(stride) if stride else None


def evaluate_translation(model, task=None, crop_size=None, num_samples=None, data_dir=None):
    """``{"task", "metrics", "protocol"}`` (and the ``baseline_*`` of paired tasks) of a loaded model."""
    translators = translators_of(model)
    if translators is None:
        raise ValueError(f"--task {task} needs an image-to-image model (pix2pix or CycleGAN).")
    cycle = len(translators) == 2
    if task is None:
        if not cycle:
            raise ValueError("pix2pix models do not record their task: pass --task "
                             f"{' or '.join(PAIRED_TASKS)}.")
        task = UNPAIRED_TASK
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}.")
    if cycle != (task == UNPAIRED_TASK):
        fits = UNPAIRED_TASK if cycle else " or ".join(PAIRED_TASKS)
        raise ValueError(f"task {task} does not fit a {'CycleGAN' if cycle else 'pix2pix'} model; "
                         f"use {fits}.")
    expected, actual = ((1, 1) if cycle else (1, 3)), _channels(model)
    if actual != expected:
        raise ValueError(f"task {task} translates {expected[0]}-channel images to {expected[1]}-"
                         f"channel ones; the model maps {actual[0]} to {actual[1]}.")
    if cycle:
        if crop_size:
            raise ValueError(f"--crop-size applies to the paired tasks; {task} images are 32x32.")
        network = load_feature_network("fashion_mnist")
        num_samples = num_samples or TEST_IMAGES_PER_CLASS
        result = cycle_quality(translators["a_to_b"], translators["b_to_a"], num_samples, data_dir,
                               network=network)
        return {"task": task, "metrics": result,
                "protocol": {"task": task, "split": "test", "num_samples": num_samples,
                             "feature_network": network.name, "image_size": 32}}
    if num_samples:
        raise ValueError(f"--num-samples applies to {UNPAIRED_TASK}; {task} uses every held-out tile.")
    crop_size = crop_size or training_size(model) or DEFAULT_CROP_SIZE
    if hasattr(model, "generator_stride"):
        check_image_size((crop_size, crop_size), model.generator_stride, "--crop-size")
    try:
        result = paired_quality(translators["translate"], task, crop_size)
    except tf.errors.InvalidArgumentError as error:  # e.g. a size the SavedModel refuses
        raise ValueError(tf_error_message(error.message)) from None
    record = {"task": task, "metrics": result, "baseline_input": input_baseline(task, crop_size),
              "baseline_mean_colour": mean_colour_baseline(task, crop_size),
              "protocol": {"task": task, "split": "test", "crop_size": crop_size,
                           "short_side": 256, "held_out": list(image_pairs.HELD_OUT)}}
    if hasattr(model, "adversarial_weight"):  # 0: the paper's L1-only baseline (Table 1)
        record["protocol"]["adversarial_weight"] = model.adversarial_weight
    return record
