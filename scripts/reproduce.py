#!/usr/bin/env python3
"""Reproduce the report's Table I and Figures 4-7 in one command. See `experiments.cli.reproduce`."""

import sys

from experiments.cli.reproduce import main

if __name__ == "__main__":
    sys.exit(main())
