#!/usr/bin/env python3
"""Measure training and serving speed of a model, optionally against the PyTorch peer. See
`experiments.cli.benchmark`."""

import sys

from experiments.cli.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
