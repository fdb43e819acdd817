"""Regenerates the protobuf modules the Python package and examples carry,
with the standard Python toolchain (grpcio-tools' protoc):

- ``python/tacit/v1/options_pb2.py`` and ``python/tacit/intents/v1/*_pb2.py``
  (Tacit's own ``.proto`` files, shipped in the wheel);
- ``examples/python/{echo,market}/v1/*_pb2.py`` (the example intents).

``python generate.py --check`` fails if a committed module differs (CI).
"""

from __future__ import annotations

import filecmp
import pathlib
import shutil
import sys
import tempfile

from grpc_tools import protoc

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PROTO = ROOT / "proto"
OUTPUTS = [
    # (include dirs, files, output dir)
    ([PROTO], ["tacit/v1/options.proto", *sorted(
        str(p.relative_to(PROTO)) for p in (PROTO / "tacit/intents/v1").glob("*.proto"))], HERE / "python"),
    ([ROOT / "examples/proto", PROTO], ["echo/v1/echo.proto", "market/v1/market.proto"], ROOT / "examples/python"),
]


def generate(out: pathlib.Path, includes: list[pathlib.Path], files: list[str]) -> None:
    args = ["protoc", *(f"-I{i}" for i in includes), f"-I{protoc._get_resource_file_name('grpc_tools', '_proto')}"]
    args += [f"--python_out={out}", f"--pyi_out={out}", *files]
    if protoc.main(args) != 0:
        sys.exit(f"protoc failed: {' '.join(args)}")


def main() -> None:
    check = "--check" in sys.argv[1:]
    stale = []
    for includes, files, out in OUTPUTS:
        with tempfile.TemporaryDirectory() as tmp:
            generate(pathlib.Path(tmp), includes, files)
            for made in sorted(pathlib.Path(tmp).rglob("*_pb2.py*")):
                target = out / made.relative_to(tmp)
                if target.exists() and filecmp.cmp(made, target, shallow=False):
                    continue
                stale.append(target)
                if not check:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(made, target)
    if check and stale:
        sys.exit("stale generated modules (run python bindings/python/generate.py):\n  " + "\n  ".join(map(str, stale)))
    for target in stale:
        print(f"wrote {target.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
