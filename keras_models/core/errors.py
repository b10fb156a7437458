"""Errors whose message is a complete one-line explanation for the user. The CLIs print it
and exit 2; importing this module loads no TensorFlow, so inputs can be checked first."""


class DataError(Exception):
    """A data source or input array that cannot be used; the message names the file."""


class ModelFileError(Exception):
    """A model file or SavedModel that cannot be used."""


class RunError(Exception):
    """A run that cannot go on (e.g. a run folder of another configuration)."""


class ConfigError(ValueError):
    """A setting out of range or of an unknown name."""


# Not ValueError at large: an unexpected ValueError is a bug and keeps its traceback.
USER_ERRORS = (DataError, ModelFileError, RunError, ConfigError)
