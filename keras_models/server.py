"""Server start-up: KServe's model server over the SavedModels of one base path, in TF Serving's
layout (`saved_models/<model>/<version>/`). The protocol lives in `serving.py`, the model in
`kserve_model.py`; this module only starts them."""

from __future__ import annotations

from pathlib import Path

from .errors import ModelFileError
from .serving import POLL_SECONDS


def serve(
    base_path: str | Path,
    name: str | None = None,
    http_port: int = 8080,
    workers: int = 1,
    poll_seconds: float = POLL_SECONDS,
) -> None:
    """Load the highest version under `base_path` and serve it until SIGTERM or SIGINT."""
    base = Path(base_path)
    if not base.is_dir():
        raise ModelFileError(f"{base}: no such folder (give a base path such as saved_models/cnn_aux)")
    if (base / "saved_model.pb").is_file():
        raise ModelFileError(f"{base}: is one version; give its base path {base.parent}, as TF Serving takes")
    import kserve

    from .kserve_model import PairModel, install_limits

    install_limits()
    model = PairModel(name or base.name, base, poll_seconds)
    model.load()
    kserve.ModelServer(http_port=http_port, workers=workers, enable_grpc=False).start([model])
    model.stop()
