"""Crops of the same regions of held-out photos from each upscaler, side by side: the LR input
(pixel-replicated), bicubic, each model given, and the original (Ledig 2017, Fig. 2 style).

    python bench/super_resolution_crops.py runs/sr/srresnet_skip runs/sr/srgan \
        --labels SRResNet SRGAN --out docs/images/super_resolution_crops.png

Each argument is a run directory (its ``model.keras``), a ``.keras`` file or a preset name.
One row per region of ``REGIONS`` (held-out photos only: none was trained on); columns in the
order above.
"""

import argparse
import io

import numpy as np
from PIL import Image, ImageDraw

from export.saved_model import load_trained_model
from training import files
from training import super_resolution_quality as quality

REGIONS = {  # photo -> HR box (top, left, size): texture, edges, fine detail
    "opencv/baboon.jpg": (40, 200, 96),
    "opencv/fruits.jpg": (160, 240, 96),
    "skimage/chelsea": (60, 140, 96),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="run directories, .keras files or preset names")
    parser.add_argument("--labels", nargs="+", help="column names (default: the paths)")
    parser.add_argument("--out", default="docs/images/super_resolution_crops.png")
    parser.add_argument("--zoom", type=int, default=2)
    args = parser.parse_args(argv)
    labels = args.labels or args.models
    if len(labels) != len(args.models):
        parser.error(f"{len(args.models)} models but {len(labels)} labels.")
    upscalers = {"bicubic": quality.bicubic}
    upscalers.update({label: quality.upscaler_of(load_trained_model(path)) for label, path in zip(labels, args.models)})
    rows = [quality.comparison_strip(upscalers, name, box, args.zoom) for name, box in REGIONS.items()]
    header = np.full((18, rows[0].shape[1], 3), 255, np.uint8)
    image = Image.fromarray(np.concatenate([header] + [p for row in rows for p in (row, header[:4])][:-1]))
    draw = ImageDraw.Draw(image)
    tile = REGIONS["opencv/baboon.jpg"][2] * args.zoom + 4
    for column, name in enumerate(["LR input", *upscalers, "original"]):
        draw.text((column * tile + 4, 3), name, fill=(0, 0, 0))
    files.atomic_write_bytes(args.out, _png(image))
    print(f"wrote {args.out}: rows {', '.join(REGIONS)}; columns LR input, {', '.join(upscalers)}, original")


def _png(image):
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


if __name__ == "__main__":
    main()
