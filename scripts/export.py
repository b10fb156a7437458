#!/usr/bin/env python3
"""Export a trained `.keras` model as a SavedModel in the TF Serving layout `<export-
dir>/<model>/<version>/` (the next free version; an existing one is never overwritten). See
`keras_models.cli.export`."""

import sys

from keras_models.cli.export import main

if __name__ == "__main__":
    sys.exit(main())
