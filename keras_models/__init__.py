"""Comparing two handwritten MNIST digits with Keras 3: the architectures, their training over
rounds of fresh pairs, SavedModel exports and the answers of an export.

    import keras_models as km

    results = km.train(km.Config(model="cnn_aux", epochs=3, pairs=500, out="runs/demo"))
    predictor = km.Predictor(results["export"])
    train_images, test_images = km.load_data()
    pairs, test = km.draw_round(train_images, test_images, 5, seed=1)
    predictor.answer(test.x)

Names load when first used, so that `import keras_models` does not start TensorFlow. A run's
`model.keras` loads with `km.load_keras_model(path)`; `keras.saving.load_model` needs
`import keras_models.models.layers` first, which registers the project's layers.
"""

import importlib

# name -> the module that defines it (and documents it, with an example)
_EXPORTS = {
    "Config": "training.config",
    "Architecture": "models.architectures",
    "register": "models.architectures",
    "build_model": "models.builder",
    "compile_model": "training.compile",
    "load_data": "data.images",
    "draw_round": "data.images",
    "train": "api",
    "Lever": "training.levers",
    "Predictor": "api",
    "export_saved_model": "serving.export",
    "load_keras_model": "models.saving",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'keras_models' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *__all__])
