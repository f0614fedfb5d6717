"""Measured quality of 4x super-resolution (SRResNet, SRGAN) on the whole held-out photos.

The super-resolution community's protocol (Ledig et al. 2017, sec. 3.1, after Set5/Set14
practice): each held-out photo (``training.super_resolution_data.HELD_OUT``, which includes
Set14's baboon) is cropped to multiples of 4, downscaled 4x (bicubic), super-resolved, and the
output, quantised to uint8 as a stored image would be, is compared with the original on the
**Y channel** (ITU-R BT.601 luma as MATLAB's ``rgb2ycbcr``: ``16 + (65.481 R + 128.553 G +
24.966 B)``, R, G, B in [0, 1]) with a border of 4 pixels cropped: ``psnr_y`` (dB, peak 255)
and ``ssim_y`` (``tf.image.ssim``, Gaussian 11x11, sigma 1.5). Bicubic upscaling is scored the
same way beside every model (``bicubic_*``).

PSNR and SSIM reward the blurry average of the plausible textures (the paper's own finding:
SRGAN has lower PSNR than SRResNet yet far better mean opinion scores, Table 2). So the table
adds a measure that sees texture: ``hf_energy_ratio``, the energy of the output's Y above the
LR's Nyquist band divided by the original's. "Above the band" is what a 4x bicubic down-and-up
round trip removes: ``high(y) = y - up(down(y))``. 1.0 means as much fine detail as the original,
below 1 blur (bicubic, MSE-trained networks), above 1 noise or over-sharpening. It checks the
amount of detail, not its placement, which PSNR/SSIM check: the two together show the trade.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from training import super_resolution_data as sr_data

BORDER = 4  # pixels cropped on each side before measuring (the scale factor, as customary)
Y_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0


def to_uint8(images):
    """Images in [-1, 1] -> uint8 values (float64), rounded and clipped."""
    return np.clip(np.rint((np.asarray(images, np.float64) + 1.0) * 127.5), 0, 255)


def luma(rgb):
    """BT.601 Y (16..235) of RGB 0-255 values ``(..., 3)`` -> ``(...)`` float64."""
    return 16.0 + np.asarray(rgb, np.float64) @ Y_WEIGHTS


def shave(image, border=BORDER):
    return image[border:-border, border:-border] if border else image


def psnr(reference, image, peak=255.0):
    mse = np.mean((np.asarray(reference, np.float64) - np.asarray(image, np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(peak**2 / mse))


def ssim(reference, image, peak=255.0):
    """SSIM of two single-channel images (``tf.image.ssim``'s Gaussian window)."""
    a = tf.constant(np.asarray(reference, np.float32)[..., None])
    b = tf.constant(np.asarray(image, np.float32)[..., None])
    return float(tf.image.ssim(a, b, max_val=peak))


def high_band(y, scale=sr_data.SCALE):
    """What a ``scale`` x bicubic down-and-up round trip removes from a single-channel image."""
    image = tf.constant(np.asarray(y, np.float32)[None, ..., None])
    size = tf.shape(image)[1:3]
    small = tf.image.resize(image, size // scale, method="bicubic", antialias=True)
    return np.asarray(y, np.float64) - tf.image.resize(small, size, method="bicubic")[0, ..., 0].numpy()


def hf_energy_ratio(reference, image):
    """Energy of ``image``'s high band over ``reference``'s (1 = as much fine detail)."""
    return float(np.sum(high_band(image) ** 2) / max(np.sum(high_band(reference) ** 2), 1e-12))


def scores(hr_uint8, output_uint8):
    """``psnr_y``, ``ssim_y`` and ``hf_energy_ratio`` of one output against its original."""
    reference, image = shave(luma(hr_uint8)), shave(luma(output_uint8))
    return {"psnr_y": psnr(reference, image), "ssim_y": ssim(reference, image),
            "hf_energy_ratio": hf_energy_ratio(reference, image)}


def upscaler_of(model):
    """``upscale(lr [1, h, w, 3] in [-1, 1]) -> [1, 4h, 4w, 3]`` of a Keras model or a SavedModel."""
    if hasattr(model, "signatures"):
        if "upscale" not in model.signatures:
            raise ValueError(f"not a super-resolution export: signatures {sorted(model.signatures)}.")
        signature = model.signatures["upscale"]
        return lambda lr: signature(images=tf.constant(lr))["images"].numpy()
    return lambda lr: np.asarray(model.upscale(tf.constant(lr)))


def bicubic(lr):
    return sr_data.upscale_bicubic(tf.constant(lr)).numpy()


def photo_scores(upscale, photos=None):
    """``{photo name: scores}`` of ``upscale`` on the whole held-out photos."""
    results = {}
    for name, hr in photos or sr_data.whole_photos("test"):
        lr = sr_data.to_unit_range(sr_data.downscale(hr[None])).numpy()
        output = upscale(lr)[0]
        if output.shape != hr.shape:
            raise ValueError(f"{name}: the model gives {output.shape} for a {lr.shape[1:3]} input, "
                             f"expected {hr.shape} (4x).")
        results[name] = scores(hr, to_uint8(output))
    return results


def mean_scores(per_photo):
    keys = next(iter(per_photo.values())).keys()
    return {key: float(np.mean([s[key] for s in per_photo.values()])) for key in keys}


def evaluate_super_resolution(model, num_samples=None, photos=None):
    """The record ``python -m training.evaluate`` prints for a super-resolution model (module doc)."""
    if num_samples is not None:
        raise ValueError("super-resolution models are scored on every held-out photo, whole; "
                         "drop --num-samples.")
    model_photos = photo_scores(upscaler_of(model), photos)
    bicubic_photos = photo_scores(bicubic, photos)
    metrics = mean_scores(model_photos)
    metrics.update({f"bicubic_{key}": value for key, value in mean_scores(bicubic_photos).items()})
    return {
        "metrics": metrics,
        "per_photo": {name: {**model_photos[name],
                             **{f"bicubic_{k}": v for k, v in bicubic_photos[name].items()}}
                      for name in model_photos},
        "protocol": {
            "task": "super_resolution_x4",
            "held_out_photos": sorted(model_photos),
            "downscale": "bicubic, antialiased (tf.image.resize), rounded to uint8",
            "channel": "Y (BT.601, 16-235)",
            "border": BORDER,
            "outputs": "rounded to uint8",
        },
    }


def comparison_strip(upscalers, name, box, zoom=2):
    """One row of crops of the held-out photo ``name``: the LR input (pixel-replicated), then
    each ``upscalers`` output, then the original, all of the HR ``box = (top, left, size)``,
    magnified ``zoom`` x (pixel replication). Returns uint8 ``(size*zoom, n*(size*zoom+4), 3)``."""
    if name not in sr_data.HELD_OUT:
        raise ValueError(f"{name} is not a held-out photo; choose one of {sr_data.HELD_OUT}.")
    hr = sr_data.hr_photo(name)
    lr = sr_data.to_unit_range(sr_data.downscale(hr[None])).numpy()
    top, left, size = box
    crops = [np.repeat(np.repeat(to_uint8(lr[0]), sr_data.SCALE, 0), sr_data.SCALE, 1)]
    crops += [to_uint8(upscale(lr)[0]) for upscale in upscalers.values()]
    crops += [hr.astype(np.float64)]
    tiles = [np.repeat(np.repeat(c[top:top + size, left:left + size], zoom, 0), zoom, 1) for c in crops]
    gap = np.full((size * zoom, 4, 3), 255.0)
    return np.concatenate([part for tile in tiles for part in (tile, gap)][:-1], axis=1).astype(np.uint8)
