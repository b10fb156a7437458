"""Size and serving cost, counted on the layers: the parameters a run reports, and the FLOPs that
the frontier's and the tuner's cost limits read."""

from __future__ import annotations

import math

import keras


def layer_flops(layer, images: int) -> int:
    """Multiply-adds x 2 of one forward pass of `layer` over `images` inputs."""
    if isinstance(layer, keras.Model):
        return sum(layer_flops(sub, images) for sub in layer.layers)
    if isinstance(layer, keras.layers.Conv2D):
        _, h, w, f = layer.output.shape
        k1, k2, cin, _ = layer.kernel.shape
        return 2 * h * w * k1 * k2 * cin * f * images
    if isinstance(layer, keras.layers.Dense):
        cin, units = layer.kernel.shape
        return 2 * cin * units * images
    return 0


def flops_per_pair(model) -> int:
    """Forward FLOPs of one pair: the shared classifier runs on both digits."""
    total = 0
    for layer in model.layers:
        images = 2 if isinstance(layer, keras.Model) and layer.name == "classifier" else 1
        total += layer_flops(layer, images)
    return total


def parameter_counts(model) -> dict:
    """{"params": every weight, "trainable_params": those the optimizer updates}. The second is
    what PyTorch's `sum(p.numel() for p in model.parameters())` counts: batch norm's moving
    statistics are buffers there, non-trainable weights here."""
    trainable = sum(int(math.prod(w.shape)) for w in model.trainable_weights)
    return {"params": int(model.count_params()), "trainable_params": trainable}
