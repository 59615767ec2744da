"""Registry benchmark: pull and push a 3-layer ~60 MB image against `skopeo copy`, same run.

    sudo python3 bench/registry.py [-n 5]

What is measured, against Debian's docker-registry on a free loopback port (its storage
in a temp dir), the image being busybox plus three layers of 20 MB of random bytes
(incompressible, stored uncompressed):

- pull: ``registry.pull(ref)`` in this process into an empty store (a new
  SANDBOX_STATE_DIR each time: blobs stored and every layer unpacked), against
  ``skopeo copy docker://ref oci:DIR:x`` into an empty OCI layout (blobs stored only);
- push: ``registry.push(ref)`` of the stored image to an empty repository of a
  registry started fresh for that push (so nothing can be mounted or skipped), against
  ``skopeo copy --preserve-digests oci:STORE:tag docker://...`` of the same image
  (read from our store, which is an OCI layout; --preserve-digests keeps skopeo from
  compressing the layers, so both send the same bytes) to a fresh registry too;
- a second pull of an image already stored (one manifest request), median of 20.

Pairs alternate which tool goes first. Printed: medians, and the ratio ours/skopeo
(target: at most 1.2); the second pull in ms (target: under 50). Everything lives
under one temp dir, removed at the end; each registry is stopped by its pid.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

TMP = Path(tempfile.mkdtemp(prefix="sandbox-bench-registry-"))
os.environ["SANDBOX_STATE_DIR"] = str(TMP / "lib")
os.environ["SANDBOX_RUN_DIR"] = str(TMP / "run")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sandbox import images  # noqa: E402
from sandbox.images import registry  # noqa: E402

LAYER_MB = 20


@contextlib.contextmanager
def docker_registry():
    """A docker-registry on a free loopback port with a fresh storage dir; its host:port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = Path(tempfile.mkdtemp(dir=TMP, prefix="registry-"))
    config = {"version": 0.1, "log": {"level": "error", "accesslog": {"disabled": True}},
              "storage": {"filesystem": {"rootdirectory": str(root / "data")}},
              "http": {"addr": f"127.0.0.1:{port}", "secret": "bench"}}
    (root / "config.yml").write_text(json.dumps(config))
    proc = subprocess.Popen(["docker-registry", "serve", str(root / "config.yml")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(400):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.025)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(root, ignore_errors=True)


def make_image(tag: str) -> images.StoredImage:
    base = images.lookup("busybox")
    layers = []
    with images.writing():
        for i in range(3):
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as tar:
                data = os.urandom(LAYER_MB << 20)
                info = tarfile.TarInfo(f"data/layer{i}.bin")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            layers.append(images.layer_from_tar(io.BytesIO(buf.getvalue())))
        return images.write_image(layers, base.config.config, base=base, tag=tag)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def skopeo(*args: str) -> None:
    subprocess.run(["skopeo", "copy", "-q", *args], check=True, capture_output=True)


def fresh_state(name: str) -> None:
    os.environ["SANDBOX_STATE_DIR"] = str(TMP / name)


def pull_pair(host: str, i: int) -> tuple[float, float]:
    ref = f"{host}/bench/image:1"

    def ours() -> None:
        fresh_state(f"pull-{i}")
        registry.pull(ref)

    def theirs() -> None:
        skopeo("--src-tls-verify=false", f"docker://{ref}", f"oci:{TMP / f'skopeo-{i}'}:x")

    a, b = (ours, theirs) if i % 2 == 0 else (theirs, ours)
    ta, tb = timed(a), timed(b)
    shutil.rmtree(TMP / f"pull-{i}", ignore_errors=True)
    shutil.rmtree(TMP / f"skopeo-{i}", ignore_errors=True)
    return (ta, tb) if i % 2 == 0 else (tb, ta)


def push_pair(store: Path, i: int) -> tuple[float, float]:
    def ours() -> None:
        with docker_registry() as host:
            images.tag_image("bench:1", f"{host}/bench/pushed:1")
            shutil.rmtree(store / "images" / "locations", ignore_errors=True)  # no mount shortcut
            out[0] = timed(lambda: registry.push(f"{host}/bench/pushed:1"))

    def theirs() -> None:
        with docker_registry() as host:
            out[1] = timed(lambda: skopeo("--preserve-digests", "--dest-tls-verify=false",
                                          f"oci:{store / 'images'}:bench:1", f"docker://{host}/bench/pushed:1"))

    out = [0.0, 0.0]
    for step in ((ours, theirs) if i % 2 == 0 else (theirs, ours)):
        step()
    return out[0], out[1]


def report(name: str, ours: list[float], theirs: list[float]) -> None:
    mo, mt = statistics.median(ours), statistics.median(theirs)
    print(f"{name:5} ours {mo * 1000:8.0f} ms   skopeo {mt * 1000:8.0f} ms   ratio {mo / mt:.2f}  "
          f"(target <= 1.2; {len(ours)} pairs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5, help="pairs of each transfer (default 5)")
    args = parser.parse_args()
    for tool in ("docker-registry", "skopeo"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: scripts/setup.sh installs it")
    store = TMP / "lib"
    image = make_image("bench:1")
    size = sum(layer.size for layer in image.layers)
    print(f"image: {len(image.layers)} layers, {size / (1 << 20):.0f} MiB; host: {os.cpu_count()} CPUs")
    with docker_registry() as host:
        images.tag_image("bench:1", f"{host}/bench/image:1")
        registry.push(f"{host}/bench/image:1")
        pulls = [pull_pair(host, i) for i in range(args.n)]
        fresh_state("lib")
        pushes = [push_pair(store, i) for i in range(args.n)]
        fresh_state("again")
        registry.pull(f"{host}/bench/image:1")
        again = [timed(lambda: registry.pull(f"{host}/bench/image:1")) for _ in range(20)]
    report("pull", [p[0] for p in pulls], [p[1] for p in pulls])
    report("push", [p[0] for p in pushes], [p[1] for p in pushes])
    print(f"second pull of a stored image: median {statistics.median(again) * 1000:.1f} ms, "
          f"max {max(again) * 1000:.1f} ms (target < 50 ms)")


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
