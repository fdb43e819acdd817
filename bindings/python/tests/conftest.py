"""Shared fixtures: the example protobuf modules (examples/python), the Rust
binaries the interop tests start, and a bound on every test."""

from __future__ import annotations

import os
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
# The example intents' generated modules (python bindings/python/generate.py).
sys.path.insert(0, str(ROOT / "examples" / "python"))


def rust_binary(name: str) -> pathlib.Path:
    """A binary of the workspace (built by .ci/run before the Python suite:
    ``cargo build -p tacit-cli -p tacit-examples``); ``TACIT_TARGET_DIR``
    overrides ``target/debug``."""
    target = pathlib.Path(os.environ.get("TACIT_TARGET_DIR", ROOT / "target" / "debug"))
    path = target / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `cargo build -p tacit-cli -p tacit-examples` first")
    return path
