"""Callbacks: interrupts held back while a backup is written."""
import os
import signal

import pytest

from keras_models.callbacks import deferred_interrupts


class Stop(Exception):
    pass


def test_a_signal_inside_the_block_takes_effect_when_it_ends():
    def stop(signum, frame):
        raise Stop()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        steps = []
        with pytest.raises(Stop):
            with deferred_interrupts():
                os.kill(os.getpid(), signal.SIGTERM)
                steps.append("finished the write")
        assert steps == ["finished the write"]
        assert signal.getsignal(signal.SIGTERM) is stop
    finally:
        signal.signal(signal.SIGTERM, previous)
