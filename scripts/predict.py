#!/usr/bin/env python3
"""Ask an exported SavedModel whether digit1 <= digit2, one JSON line per pair. See `keras_models.cli.predict`."""

import sys

from keras_models.cli.predict import main

if __name__ == "__main__":
    sys.exit(main())
