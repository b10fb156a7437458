"""Serve the SavedModels of one base path over HTTP with KServe's model server: TF Serving's
REST predict API (KServe's V1 protocol) and the Open Inference Protocol (V2) over REST, with
its binary tensor extension, and over gRPC with --grpc-port.

    python scripts/serve.py saved_models/cnn_aux --http-port 8080
    curl -s localhost:8080/v1/models/cnn_aux:predict -d @request.json

The highest numeric version is served, and a newer one is picked up within --poll-seconds of
appearing, as TF Serving does. SIGTERM or Ctrl-C stop the server after the requests in flight.
"""

from __future__ import annotations

import argparse
import sys

from keras_models.cli import ArgumentParser, DefaultsFormatter, port, positive_float, positive_int, run_cli


def parse_args(argv=None) -> argparse.Namespace:
    from keras_models.serving.protocol import BODY_SECONDS, POLL_SECONDS, REQUEST_LOGS
    from keras_models.serving.runtimes import RUNTIMES
    from keras_models.serving.server import ALL_INTERFACES

    p = ArgumentParser(prog="serve.py", description=__doc__.split("\n\n")[0], formatter_class=DefaultsFormatter)
    p.add_argument("saved_model_base_path", help="the folder of numbered versions, e.g. saved_models/cnn_aux")
    p.add_argument("--model-name", help="the name in the URL (default: the base path's folder name)")
    p.add_argument("--http-port", type=port, default=8080, help="REST: V1 (TF Serving's API) and V2")
    p.add_argument(
        "--host",
        default=ALL_INTERFACES,
        help="the address REST and gRPC listen on; the default is every interface, as TF Serving's",
    )
    p.add_argument("--grpc-port", type=port, help="also serve the V2 protocol over gRPC on this port (on --host)")
    p.add_argument("--workers", type=positive_int, default=1, help="server processes, each with its own model")
    p.add_argument(
        "--poll-seconds", type=positive_float, default=POLL_SECONDS, help="how often to look for a new version"
    )
    p.add_argument(
        "--runtime",
        choices=list(RUNTIMES),
        default="tensorflow",
        help="what answers: the SavedModel with TensorFlow, or the export's model.onnx with ONNX Runtime "
        "(which needs no TensorFlow: requirements-onnx.txt)",
    )
    p.add_argument(
        "--body-timeout",
        type=positive_float,
        default=BODY_SECONDS,
        help="seconds a request body may take to arrive; a slower one is answered 408 and its connection closed",
    )
    p.add_argument(
        "--request-log",
        choices=list(REQUEST_LOGS),
        default="line",
        help="what the log keeps of each request: nothing, one access line, or also KServe's timings",
    )
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)

    def job():
        from keras_models.serving.server import serve

        serve(
            args.saved_model_base_path,
            args.model_name,
            args.http_port,
            args.workers,
            args.poll_seconds,
            args.host,
            args.grpc_port,
            args.runtime,
            args.body_timeout,
            args.request_log,
        )

    return run_cli(job, "serve.py")


if __name__ == "__main__":
    sys.exit(main())
