#!/usr/bin/env python3
"""Serve the SavedModels of one base path over HTTP (TF Serving's REST API, through KServe).
See `keras_models.cli.serve`."""

import sys

from keras_models.cli.serve import main

if __name__ == "__main__":
    sys.exit(main())
