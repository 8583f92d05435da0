"""The erpsync gRPC stubs, generated from the .proto files with grpcio-tools.

Nothing generated is committed: the stubs are made from the contract you have.

* `python3 stubs.py OUT_DIR` writes them into OUT_DIR (then run the example with
  `ERPSYNC_STUBS_DIR=OUT_DIR`).
* `import stubs` loads them from $ERPSYNC_STUBS_DIR, or, when it is unset, generates them
  into a temporary folder first (removed when the program exits).

The .proto files are read from $ERPSYNC_PROTO_DIR, by default the `proto/` folder of the
erpsync repository this example sits in (../../proto).
"""

import atexit
import importlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

PROTO_FILES = [
    "erpsync/v1/integration_history.proto",
    "erpsync/v1/erp_ingest.proto",
    "erpsync/v1/crm_sink.proto",
    "erpsync/v1/admin.proto",
]


def proto_dir() -> Path:
    """Where the erpsync .proto files are."""
    default = Path(__file__).resolve().parent.parent.parent / "proto"
    return Path(os.environ.get("ERPSYNC_PROTO_DIR", default))


def generate(out_dir: Path) -> None:
    """Writes the Python message and service modules of every erpsync proto into out_dir."""
    from grpc_tools import protoc  # grpcio-tools; also ships google/protobuf/*.proto

    import grpc_tools

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{proto_dir()}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *PROTO_FILES,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on the protos in {proto_dir()}")


def _load(out_dir: Path) -> None:
    sys.path.insert(0, str(out_dir))
    names = [p.removesuffix(".proto").replace("/", ".") for p in PROTO_FILES]
    for name in names:
        for suffix in ("_pb2", "_pb2_grpc"):
            module = importlib.import_module(name + suffix)
            globals()[module.__name__.rsplit(".", 1)[1]] = module


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python3 stubs.py OUT_DIR")
    generate(Path(sys.argv[1]))
    print(f"stubs written to {sys.argv[1]} from {proto_dir()}")
else:
    _dir = os.environ.get("ERPSYNC_STUBS_DIR")
    if _dir is None:
        _dir = tempfile.mkdtemp(prefix="erpsync-stubs-")
        atexit.register(shutil.rmtree, _dir, True)
        generate(Path(_dir))
    _load(Path(_dir))
    # Now: stubs.admin_pb2, stubs.admin_pb2_grpc, stubs.integration_history_pb2, …
