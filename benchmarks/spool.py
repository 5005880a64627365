"""The copy job's disk with its bound: a batch whose blobs are larger than the bound (``make bench`` runs it last).

Seeds K images in the local hub, each with its own incompressible layer (plus a shared base),
then copies every image into two target repositories through the strict ECR stand-in, the way
a copy job works through a batch (:data:`hubmirror.runner.job.COPY_WORKERS` at once, one
:class:`~hubmirror.copying.transfer.Transfer`). A sampler reads the size of the job's local
copies on disk every 20 ms. Prints the unique bytes fetched, the bound, the peak measured on disk,
the transfer's own peak count, the copies dropped and the blobs fetched again.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from devstack.content.images import OCI_LAYER, OCI_MANIFEST, Blob, Pusher, platform_image, tar_layer
from devstack.registries.ecrfront import EcrFront
from devstack.registries.hubfront import HubFront
from devstack.registries.registry import BasicAuth, Registry
from devstack.stack import ECR_PASSWORD, ECR_USER
from hubmirror.adapters.registry.client import RegistryClient
from hubmirror.copying.blobindex import MemoryBlobIndex
from hubmirror.copying.transfer import Transfer
from hubmirror.domain.registry.model import Credentials
from hubmirror.runner.job import COPY_WORKERS


def _on_disk(transfer: Transfer) -> int:
    spool = transfer._spool
    if spool is None:
        return 0
    total = 0
    for entry in os.scandir(spool):
        try:
            total += entry.stat().st_size
        except FileNotFoundError:
            continue  # dropped while counted
    return total


def _seed(pusher: Pusher, images: int, layer_bytes: int) -> list[tuple[str, str]]:
    seeded = []
    for n in range(images):
        base = platform_image("linux/amd64", f"spool bench {n}")
        own = Blob(OCI_LAYER, tar_layer({"opt/data": os.urandom(layer_bytes)}))
        layers = [*base.layers, own]
        for blob in (base.config, *layers):
            pusher.blob(f"library/big{n}", blob)
        document = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": base.config.descriptor(),
            "layers": [layer.descriptor() for layer in layers],
        }
        manifest = Blob(OCI_MANIFEST, json.dumps(document).encode())
        seeded.append((f"library/big{n}", pusher.manifest(f"library/big{n}", "1", manifest)))
    return seeded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--layer-mib", type=float, default=4.0)
    parser.add_argument("--bound-mib", type=float, default=16.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="hubmirror-spool-bench-") as tmp:
        workdir = Path(tmp)
        front = HubFront(workdir / "hub")
        hub = Registry(workdir / "hub", auth=front.token_auth()).start()
        front.start(hub.host)
        backend = Registry(workdir / "ecr", auth=BasicAuth(ECR_USER, ECR_PASSWORD)).start()
        ecr = EcrFront(workdir / "ecr")
        ecr.templates = [{"Prefix": "mirror", "AppliedFor": ["CREATE_ON_PUSH"]}]
        ecr.start(backend.host)
        try:
            seeded = _seed(Pusher(front.host, *front.admin), args.images, int(args.layer_mib * 2**20))
            bound = int(args.bound_mib * 2**20)
            target = RegistryClient(ecr.host, Credentials(ECR_USER, ECR_PASSWORD), side="target")
            transfer = Transfer(target, MemoryBlobIndex(), spool_limit=bound)
            peak = [0]
            done = threading.Event()

            def sample() -> None:
                while not done.is_set():
                    peak[0] = max(peak[0], _on_disk(transfer))
                    time.sleep(0.02)

            def copy(pair: tuple[str, str]) -> None:
                repository, digest = pair
                for n in ("a", "b"):  # two entries of the batch want each image
                    transfer.copy(RegistryClient(front.host), repository, digest, f"mirror/{n}/{repository}", "1")

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            started = time.monotonic()
            with ThreadPoolExecutor(max_workers=COPY_WORKERS) as pool:
                list(pool.map(copy, seeded))
            seconds = time.monotonic() - started
            done.set()
            sampler.join()
            stats = transfer.stats
            transfer.close()
            print(
                json.dumps(
                    {
                        "images": args.images,
                        "copies": 2 * args.images,
                        "unique_blob_bytes_fetched": stats.transferred_bytes,
                        "bound_bytes": bound,
                        "peak_on_disk_bytes": peak[0],
                        "peak_counted_bytes": stats.spool_peak_bytes,
                        "copies_dropped": stats.spool_evicted,
                        "refetched": stats.refetched,
                        "relayed_from_copies_or_target": stats.relayed,
                        "seconds": round(seconds, 2),
                    },
                    indent=2,
                )
            )
        finally:
            front.stop()
            hub.stop()
            ecr.stop()
            backend.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
