"""Command-line entry: `python -m training ...`, alone or under torchrun.

Exit codes: 0 trained to total_steps; 143 stopped by SIGTERM after saving a checkpoint;
2 bad arguments, config or input data; 3 the checkpoint prefix belongs to another fingerprint;
1 anything else (a traceback on stderr).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence

from training.checkpoint import FingerprintMismatch, InitCheckpointError
from training.config import ConfigError, TrainConfig
from training.data import InputDataError
from training.loop import train
from training.progress import emit
from training.store_args import add_store_arguments, build_store

EXIT_BAD_INPUT = 2
EXIT_FINGERPRINT_MISMATCH = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training", description="Train the CTR model with resumable checkpoints."
    )
    add_store_arguments(parser)
    parser.add_argument(
        "--input-key",
        action="append",
        required=True,
        help="TABLE=KEY: a partition of a table the config's model_inputs declares, e.g. "
        "training_examples=features/training_examples/2026-11-01.parquet (repeat per table and "
        "day; order does not matter)",
    )
    parser.add_argument(
        "--checkpoint-prefix", required=True, help="key prefix for this run's checkpoints"
    )
    parser.add_argument("--config-json", default="{}", help="TrainConfig fields as JSON")
    parser.add_argument(
        "--input-data-versions-json",
        default="{}",
        help='{"<input key>": "<content sha256>"}: part of the fingerprint',
    )
    parser.add_argument("--code-version", required=True, help="part of the fingerprint")
    parser.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="resume from the newest valid checkpoint (default) or start fresh",
    )
    parser.add_argument(
        "--init-from-json",
        default="{}",
        help='warm start: {"step_key": "<prefix>/step-NNNNNN", "manifest_sha256": "<sha256>"}'
        " of another run's checkpoint (part of the fingerprint)",
    )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    return parser


def _json_object(text: str, flag: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError as err:
        raise ConfigError(f"{flag} is not valid JSON: {err}") from err
    if not isinstance(value, dict):
        raise ConfigError(f"{flag} must be a JSON object")
    return value


def input_tables(values: Sequence[str]) -> dict[str, str]:
    """{object key: table} from the repeated `--input-key TABLE=KEY`."""
    tables: dict[str, str] = {}
    for value in values:
        table, sep, key = value.partition("=")
        if not sep or not table or not key:
            raise ConfigError(
                f"--input-key {value!r} must be TABLE=KEY, naming the declared table the "
                "partition belongs to (e.g. training_examples=features/training_examples/"
                "2026-11-01.parquet)"
            )
        if tables.get(key, table) != table:
            raise ConfigError(f"--input-key {key} is given as both {tables[key]} and {table}")
        tables[key] = table
    return tables


def install_sigterm_handler() -> threading.Event:
    """SIGTERM (Kubernetes preemption, torchrun shutdown) only sets a flag: the loop saves at
    the next step boundary. Doing the save inside the handler could run it in the middle of an
    optimizer step, i.e. checkpoint a state that never existed."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    return stop


def main(argv: Sequence[str] | None = None) -> int:
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format=f"%(asctime)s rank={rank} %(levelname)s %(name)s: %(message)s",
    )
    args = build_parser().parse_args(argv)
    stop = install_sigterm_handler()
    try:
        config = TrainConfig.from_dict(_json_object(args.config_json, "--config-json"))
        versions = _json_object(args.input_data_versions_json, "--input-data-versions-json")
        init_from = _json_object(args.init_from_json, "--init-from-json") or None
        if init_from and set(init_from) != {"step_key", "manifest_sha256"}:
            raise ConfigError("--init-from-json needs exactly step_key and manifest_sha256")
        result = train(
            build_store(args),
            input_tables=input_tables(args.input_key),
            checkpoint_prefix=args.checkpoint_prefix,
            config=config,
            input_data_versions=versions,
            code_version=args.code_version,
            resume=args.resume,
            stop_event=stop,
            device=args.device,
            init_from=init_from,
        )
    except (ConfigError, InputDataError, InitCheckpointError) as err:
        return _fail(rank, EXIT_BAD_INPUT, err)
    except FingerprintMismatch as err:
        return _fail(rank, EXIT_FINGERPRINT_MISMATCH, err)
    return result.exit_code


def _fail(rank: int, code: int, err: Exception) -> int:
    logging.getLogger("training").error("%s: %s", type(err).__name__, err)
    if rank == 0:
        emit("error", error=type(err).__name__, message=str(err), exit_code=code)
    return code
