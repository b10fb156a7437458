"""Measure training and serving speed of a model, optionally against the PyTorch peer.

    python scripts/benchmark.py --model cnn_aux --compare-torch
    python scripts/benchmark.py --model cnn_aux --all --test-data ../shared/mnist --json
    python scripts/benchmark.py --saved-model saved_models/cnn_aux      # an exported model's cost and speed
    python scripts/benchmark.py --race sprint,speedrun --rounds 10 --test-data ../shared/mnist --out runs/race

The last line with --json is one JSON object (ms_per_step, pairs_per_s, gflops_per_s, ...).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from keras_models.cli import ArgumentParser, DefaultsFormatter, positive_float, positive_int, run_cli
from keras_models.models.architectures import NAMES
from keras_models.training.config import Config, choices

from ..peer import DEFAULT_PEER, DEFAULT_PEER_TEXT, DEFAULT_REFERENCE


def parse_args(argv=None) -> argparse.Namespace:
    p = ArgumentParser(prog="benchmark.py", description=__doc__.split("\n\n")[0], formatter_class=DefaultsFormatter)
    p.add_argument("--model", choices=NAMES, default="cnn_aux", help="the architecture to time")
    p.add_argument("--batch", type=positive_int, default=100, help="pairs per timed training step")
    xla = "compile the train step with XLA; with --race-study: this checkout's"
    p.add_argument("--jit-compile", action="store_true", help=xla)
    precision = "the timed model's arithmetic (train.py --precision); with --race-study: this checkout's"
    p.add_argument("--precision", choices=choices("precision"), default="float32", help=precision)
    p.add_argument("--steps", type=positive_int, default=50, help="timed steps (after the warm-up)")
    p.add_argument("--warmup", type=positive_int, default=10, help="untimed steps first (tracing, caches)")
    p.add_argument("--compare-torch", action="store_true", help="alternate with the PyTorch peer, print ratios")
    p.add_argument("--reps", type=positive_int, default=5, help="A/B repetitions with --compare-torch")
    p.add_argument("--torch-reference", type=Path, default=DEFAULT_REFERENCE, help="the PyTorch peer's script")
    p.add_argument(
        "--all",
        action="store_true",
        help="also: time per epoch, seconds to --target test accuracy (fast recipe), "
        "SavedModel serving speed, peak memory of train.py",
    )
    p.add_argument("--target", type=float, default=0.98, help="with --all: the test accuracy to time to")
    p.add_argument("--max-epochs", type=positive_int, default=25, help="with --all: give up on --target after these")
    p.add_argument("--test-data", default=None, help="test pairs for --all's time to accuracy")
    p.add_argument("--breakdown", action="store_true", help="time TensorFlow's conv kernels at the model's shapes")
    profile = "TensorFlow's profiler over --steps steps, its trace in DIR (TensorBoard's Profile tab); self time per op"
    p.add_argument("--profile", type=Path, metavar="DIR", help=profile)
    load = "also: this many REST requests of 1-100 pairs from 8 concurrent clients to scripts/serve.py on 127.0.0.1"
    p.add_argument("--serving-load", type=positive_int, metavar="REQUESTS", help=load + ", beside the model in process")
    p.add_argument(
        "--saved-model",
        type=Path,
        metavar="PATH",
        help="also: MFLOP per pair and serving speed of this export (a base path serves its highest "
        "version), beside a fresh --model's SavedModel timed in the same run",
    )
    p.add_argument(
        "--protocols",
        action="store_true",
        help="also: pairs/s at batch 1000 through each of serve.py's paths (V1 JSON, V2 JSON, V2 binary, gRPC) "
        "on 127.0.0.1, beside the SavedModel in process",
    )
    p.add_argument("--matmul", action="store_true", help="also: the CPU's matmul peak (2048^3, float32 and bfloat16)")
    p.add_argument(
        "--runtimes",
        action="store_true",
        help="also: ONNX Runtime against TensorFlow on a fresh export (install size, a fresh process's first "
        "answer, pairs/s at batch 1 and 1000)",
    )
    compare = "alternate training steps under the float32 and mixed_bfloat16 dtype policies, print ratios"
    p.add_argument("--compare-precision", action="store_true", help=compare)
    p.add_argument(
        "--race",
        type=recipe_list,
        default=None,
        metavar="RECIPES",
        help="instead: train.py's recipes (comma-separated) for --rounds rounds each, beside the peer "
        f"({DEFAULT_PEER_TEXT}; needs torch) in the same invocation, test accuracy against training "
        "seconds (needs --test-data; writes --out/race.json and race.png)",
    )
    rounds = "with --race: rounds per entry; with --race-study and --floor: per model"
    p.add_argument("--rounds", type=positive_int, default=10, help=rounds)
    p.add_argument("--peer", type=Path, default=DEFAULT_PEER, help="with --race: the peer's script")
    p.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="with --race: a checkout of the project (the code before a change) whose train.py also runs each recipe",
    )
    p.add_argument(
        "--baseline-recipes",
        type=recipe_list,
        default=None,
        metavar="RECIPES",
        help="with --race and --baseline: the recipes that the baseline also trains (default: all of --race)",
    )
    p.add_argument(
        "--race-study",
        type=float,
        default=None,
        metavar="EPOCHS_SCALE",
        help="instead: Table I with the report's recipe for --rounds rounds and its epochs scaled by this, by "
        "--baseline and then by this checkout, one after the other: wall time and training seconds ratios",
    )
    p.add_argument(
        "--workers", type=positive_int, default=1, help="with --race-study: this checkout's reproduce.py --workers"
    )
    p.add_argument("--ray-address", default=None, help="with --race-study: this checkout's reproduce.py --ray-address")
    stack = "with --race-study: this checkout's reproduce.py --stack"
    p.add_argument("--stack", type=positive_int, default=1, help=stack)
    stacking = "instead: the report recipe's epoch per round, alone and 4 rounds stacked in one model, each +-XLA"
    p.add_argument("--stacking", action="store_true", help=stacking)
    floor = "instead: Table I's convolution and matmul kernels alone, report recipe, epochs scaled by this"
    p.add_argument("--floor", type=positive_float, default=None, metavar="EPOCHS_SCALE", help=floor)
    p.add_argument("--out", type=Path, default=None, help="with --race: its folder (default a new runs/race-TIME)")
    p.add_argument("--json", action="store_true", help="end with one JSON line")
    return p.parse_args(argv)


def recipe_list(text: str) -> list[str]:
    from keras_models.training.recipes import TRAIN_RECIPES

    names = [t for t in text.split(",") if t]
    unknown = [n for n in names if n not in TRAIN_RECIPES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown recipe {unknown[0] if unknown else text!r}; choose from {', '.join(TRAIN_RECIPES)}"
        )
    return names


def main(argv=None) -> int:
    args = parse_args(argv)

    def job():
        from keras_models.core.errors import ConfigError

        from .. import benchmark as b
        from .. import profile
        from .. import serving_speed as sv

        if args.compare_torch and not args.torch_reference.is_file():
            raise ConfigError(f"{args.torch_reference}: no PyTorch peer there (see --torch-reference)")
        from keras_models.cli import command_line
        from keras_models.core.machine import describe, provenance, summary

        command = command_line("benchmark.py", argv)

        def stamped(result: dict) -> dict:
            return {**result, "provenance": provenance(command)}

        if args.stacking or args.floor is not None:
            from ..floor import study_floor
            from ..stacking_speed import measure

            measured = measure() if args.stacking else study_floor(args.rounds, args.floor, args.steps, args.warmup)
            return print(json.dumps(stamped(measured))) if args.json else None
        if args.race or args.race_study is not None:
            from datetime import datetime

            from .. import race

            out, peer = args.out or Path(f"runs/race-{datetime.now():%Y%m%d-%H%M%S}"), args.peer
            if args.race_study is not None:
                if not (args.baseline and args.test_data):
                    raise ConfigError("--race-study needs --baseline (the code before a change) and --test-data")
                now = dict(workers=args.workers, precision=args.precision, ray_address=args.ray_address)
                now.update(stack=args.stack, jit_compile=args.jit_compile, command=command)
                result = race.study_race(args.baseline, args.rounds, args.race_study, args.test_data, out, **now)
            else:
                if not args.test_data:
                    raise ConfigError("--race scores MNIST test pairs, as the peer does: give --test-data")
                extra = dict(baseline_recipes=args.baseline_recipes, command=command)
                result = race.race(args.race, args.rounds, args.test_data, out, peer, args.baseline, **extra)
            if args.json:
                print(json.dumps(stamped(result)))
            return
        cfg = Config(model=args.model, jit_compile=args.jit_compile, precision=args.precision)
        machine = describe()
        print(
            f"machine: {summary(machine)}; TensorFlow threads intra-op {machine['intra_op_threads']}, "
            f"inter-op {machine['inter_op_threads']} (0: its default)"
        )
        exported = None
        if args.saved_model:  # first: a wrong path is refused before anything is timed
            exported = sv.saved_model_speed(args.saved_model)
            baseline = sv.serving_speed(cfg)
            exported["baseline_pairs_per_s_batch1000"] = baseline["serving_pairs_per_s_batch1000"]
            print(
                f"{exported['saved_model']}: {exported['mflops_per_pair']:.1f} MFLOP per pair, "
                f"{exported['serving_pairs_per_s_batch1000']:.0f} pairs/s at batch 1000, "
                f"{exported['serving_ms_batch1']:.2f} ms median at batch 1; a fresh {args.model} in the same run: "
                f"{baseline['serving_pairs_per_s_batch1000']:.0f} pairs/s"
            )
        result = {**b.keras_throughput(cfg, args.batch, args.steps, args.warmup), "machine": machine}
        if exported:
            result["saved_model"] = exported
        print(
            f"{args.model}: {result['ms_per_step']:.1f} ms/step, {result['pairs_per_s']:.0f} pairs/s, "
            f"{result['gflops_per_s']:.1f} GFLOP/s ({result['mflops_per_pair_forward']} MFLOP/pair forward)"
        )
        if args.compare_torch:
            cmp = b.compare_with_torch(cfg, args.torch_reference, args.reps, args.batch, args.steps, args.warmup)
            result["torch_comparison"] = cmp
            print(f"ratio keras/torch per repetition: {cmp['ratios']}; median {cmp['ratio_median']:.3f}")
        if args.compare_precision:
            cmp = result["precision_comparison"] = b.compare_precision(
                cfg, args.reps, args.batch, args.steps, args.warmup
            )
            print(f"ratio mixed_bfloat16/float32 per repetition: {cmp['ratios']}; median {cmp['ratio_median']:.3f}")
        if args.matmul:
            peak = result["matmul"] = b.matmul_gflops()
            print(
                f"tf.matmul {peak['n']}^3: {peak['float32_gflops_per_s']:.0f} GFLOP/s float32, "
                f"{peak['bfloat16_gflops_per_s']:.0f} GFLOP/s bfloat16"
            )
            work = result["study_arithmetic"] = b.study_arithmetic()
            for key, what in (("total_tflop", "with the test curve"), ("training_tflop", "without it")):
                at = {k: 1000 * work[key] / peak[f"{k}_gflops_per_s"] for k in ("float32", "bfloat16")}
                print(
                    f"Table I, report recipe, {what}: {work[key]} TFLOP a round at least: "
                    f"{at['float32']:.0f} s at the float32 matmul peak, {at['bfloat16']:.0f} s at the bfloat16 one"
                )
            print(f"  per model, with the test curve: {work['tflop_per_round']}")
        if args.breakdown:
            from keras_models.models.builder import build_model

            rows = profile.conv_breakdown(build_model(cfg.spec), args.batch)
            result["conv_breakdown"] = rows
            total = sum(r["forward"] + r["backprop_input"] + r["backprop_filter"] for r in rows)
            for r in rows:
                print(
                    f"  {r['layer']:14s} {r['shape']:14s} forward {r['forward']:6.2f} ms, backprop input "
                    f"{r['backprop_input']:6.2f} ms, backprop filter {r['backprop_filter']:6.2f} ms"
                )
            result["conv_kernels_ms"] = round(total, 2)
            print(f"convolution kernels: {total:.1f} ms of a {result['ms_per_step']:.1f} ms step")
        if args.profile:
            from keras_models.models.builder import build_model
            from keras_models.training.compile import compile_for

            model = compile_for(build_model(cfg.spec, 33.0, 80.0**2), cfg.replace(steps_per_execution=1))
            rows = profile.profile_op_types(model, args.batch, args.steps, args.profile)
            result["profile"] = rows
            print(f"profile of {args.steps} steps (trace in {args.profile}); self time per op type:")
            for r in rows[:12]:
                print(f"  {r['op_type']:24s} {100 * r['share']:5.1f}%")
            conv = sum(r["share"] for r in rows if r["op"].startswith("Conv2D"))
            result["profile_conv_share"] = round(conv, 4)
            print(f"convolution kernels: {100 * conv:.1f}% of the profiled op time")
        if args.all:
            fast = cfg.replace(lr=1e-3, test_data=args.test_data)
            result["seconds_per_epoch"] = round(b.epoch_seconds(fast), 3)
            print(f"epoch of {fast.recipe.pairs} pairs (with the test curve): {result['seconds_per_epoch']:.2f} s")
            result["time_to_accuracy"] = b.seconds_to_accuracy(fast, args.target, args.max_epochs)
            print(f"seconds to {args.target:.0%} test accuracy: {result['time_to_accuracy']['seconds_to_target']}")
            result.update(sv.serving_speed(cfg))
            print(
                f"SavedModel: {result['serving_pairs_per_s_batch1000']:.0f} pairs/s at batch 1000, "
                f"{result['serving_ms_batch1']:.2f} ms median at batch 1"
            )
            result["train_peak_memory_mb"] = sv.train_peak_memory_mb(args.model)
            print(f"peak resident memory of train.py --model {args.model}: {result['train_peak_memory_mb']:.0f} MB")
        if args.protocols:
            from ..serve_load import protocol_speeds

            speeds = result["protocols"] = protocol_speeds(cfg)
            print(f"SavedModel in process: {speeds['in_process']:.0f} pairs/s at batch {speeds['batch']}")
            for k, ratio in speeds["ratios"].items():
                print(f"  serve.py {k:9s} {speeds[k]:7.0f} pairs/s, {ratio:.2f} of in process")
        if args.serving_load:
            from ..serve_load import server_load

            result.update(sv.serving_speed(cfg))
            print(
                f"SavedModel in process: {result['serving_pairs_per_s_batch1000']:.0f} pairs/s at batch 1000, "
                f"{result['serving_ms_batch1']:.2f} ms median at batch 1"
            )
            load = result["serving_load"] = server_load(cfg, requests=args.serving_load)
            print(
                f"serve.py, {load['clients']} clients, {load['requests']} requests ({load['pairs']} pairs): "
                f"{load['requests_per_s']:.0f} requests/s, {load['pairs_per_s']:.0f} pairs/s, latency p50 "
                f"{load['latency_ms_p50']:.0f} ms, p99 {load['latency_ms_p99']:.0f} ms, {load['failures']} failed"
            )
        if args.runtimes:
            from ..runtimes_speed import measure_and_print

            result["runtimes"] = measure_and_print(cfg)
        if args.json:
            print(json.dumps(stamped(result)))

    return run_cli(job, "benchmark.py")


if __name__ == "__main__":
    sys.exit(main())
