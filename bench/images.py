"""Image benchmark: `true` in a 10-layer image against busybox, and the store's size on disk.

    sudo python3 bench/images.py [-n 200] [--builds 20] [--only run|sizes|builds]

What is measured:

- ``run(SandboxSpec(image=..., command=["true"]))`` in this process, wall time from
  "start it" to "torn down", for ``busybox`` (one layer) and for ``ten`` (busybox plus
  nine small layers, each a file and a changed /etc/motd, one with a whiteout), alternated
  run by run after a warm-up, each first in every other pair. Printed: median and p90 of each, and the ratio of the
  medians (target: at most 1.1).
- The store's size on disk (st_blocks, hard links once) with busybox alone, then with two
  images on busybox that share its layer and add 1 MiB each: the shared layer is stored
  once, so the second image costs its own layer only. Blob and unpacked copies are
  counted apart (each layer is kept as its tar and unpacked).

- `sandbox build` against `buildah bud --layers` on a 7-instruction Sandboxfile, warm
  (nothing changed) and cold (``--no-cache``): bench/builds.py says how.

Everything lives under one temp dir (SANDBOX_STATE_DIR, SANDBOX_RUN_DIR) and the
cgroup parent ``sandbox-bench``, removed at the end, also after an error.
"""

from __future__ import annotations

import io
import os
import shutil
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path

TMP = Path(tempfile.mkdtemp(prefix="sandbox-bench-images-"))
os.environ["SANDBOX_STATE_DIR"] = str(TMP / "lib")
os.environ["SANDBOX_RUN_DIR"] = str(TMP / "run")
os.environ["SANDBOX_CGROUP_PARENT"] = "sandbox-bench"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scratch import ScratchParser  # noqa: E402 - bench/

from sandbox import SandboxSpec, images, run  # noqa: E402
from sandbox.cgroups import host_cgroups  # noqa: E402
from sandbox.images import layout  # noqa: E402
from sandbox.images.remove import disk_usage  # noqa: E402
from sandbox.units import format_size  # noqa: E402


def tar_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def image_on_busybox(tag: str, layers: list[bytes]) -> None:
    base = images.lookup("busybox")
    with images.writing():
        stored = [images.layer_from_tar(io.BytesIO(data)) for data in layers]
        images.write_image(stored, base.config.config, base=base, tag=tag)


def ten_layers() -> list[bytes]:
    layers = [tar_of({f"opt/l{i}": b"x" * 100, "etc/motd": f"layer {i}\n".encode()}) for i in range(8)]
    layers.append(tar_of({"opt/.wh.l0": b"", "etc/motd": b"last\n"}))
    return layers


def compare(n: int) -> None:
    images.get("busybox")
    image_on_busybox("ten", ten_layers())
    assert len(images.lookup("ten").layers) == 10
    specs = {name: SandboxSpec(image=name, command=["true"]) for name in ("busybox", "ten")}
    for spec in specs.values():
        for _ in range(10):
            run(spec, log_file=False)
    times: dict[str, list[float]] = {name: [] for name in specs}
    for i in range(n):
        pair = list(specs.items())
        for name, spec in pair if i % 2 else reversed(pair):  # neither always goes first
            t0 = time.perf_counter()
            result = run(spec, log_file=False)
            times[name].append((time.perf_counter() - t0) * 1000)
            assert result.exit_code == 0, result.stderr
    print(f"`true`, {n} runs each, alternated (ms)")
    print(f"{'image':<10} {'median':>8} {'p90':>8}")
    for name, values in times.items():
        p90 = statistics.quantiles(values, n=10)[-1]
        print(f"{name:<10} {statistics.median(values):>8.2f} {p90:>8.2f}")
    ratio = statistics.median(times["ten"]) / statistics.median(times["busybox"])
    print(f"ratio ten/busybox: {ratio:.3f} (target <= 1.1)")


def sizes() -> None:
    def usage() -> tuple[int, int]:
        return disk_usage(layout.root() / "blobs"), disk_usage(layout.root() / "layers")

    for tag in [t for i in images.list_images() for t in i.tags if t != "busybox:latest"]:
        images.remove_image(tag)
    images.prune()
    alone = usage()
    image_on_busybox("one", [tar_of({"data/one": os.urandom(1 << 20)})])
    image_on_busybox("two", [tar_of({"data/two": os.urandom(1 << 20)})])
    both = usage()
    base = images.lookup("busybox").layers[0]
    shared = images.lookup("one").layers[0] == images.lookup("two").layers[0] == base
    print("\nstore size on disk (blobs + unpacked layers)")
    print(f"busybox alone:                {format_size(sum(alone))} "
          f"(blobs {format_size(alone[0])}, layers {format_size(alone[1])})")
    print(f"busybox + two images on it:   {format_size(sum(both))} "
          f"(blobs {format_size(both[0])}, layers {format_size(both[1])})")
    print(f"the busybox layer is shared by both images: {shared}; "
          f"unpacked layers in the store: {len(os.listdir(layout.root() / 'layers'))}")


def main() -> None:
    parser = ScratchParser(TMP, description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=200, help="runs per image")
    parser.add_argument("--builds", type=int, default=20, help="warm builds per builder")
    parser.add_argument("--only", choices=("run", "sizes", "builds"), help="one part only")
    args = parser.parse_args()
    try:
        if args.only in (None, "run"):
            compare(args.n)
        if args.only in (None, "sizes"):
            sizes()
        if args.only in (None, "builds"):
            from builds import compare_builds

            images.get("busybox")
            compare_builds(TMP, args.builds, layout.root())
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
        try:
            host_cgroups().remove_parents()
        except Exception:
            pass


if __name__ == "__main__":
    main()
