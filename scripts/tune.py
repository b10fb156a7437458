#!/usr/bin/env python3
"""Search depth and width (and comparer size, dropout, learning rate) with keras-tuner, on a
validation split of the training pairs; write best_hparams.json, trials.md and trials.png. See
`tuning.cli`."""

import sys

from tuning.cli import main

if __name__ == "__main__":
    sys.exit(main())
