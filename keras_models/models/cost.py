"""Serving cost, counted on the layers: what the frontier's and the tuner's cost limits read."""

from __future__ import annotations

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
