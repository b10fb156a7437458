#!/usr/bin/env python3
"""Train one of the six digit-comparison models over rounds of freshly drawn MNIST pairs, report
mean ± std test accuracy, and export the last round's model as a SavedModel. See
`keras_models.cli.train`."""

import sys

from keras_models.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
