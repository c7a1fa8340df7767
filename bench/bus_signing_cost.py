"""What signing the bus costs (realtime/pipeline/signing.py, issue #22): the listener's serialize
and one bridge's deserialize of a batch, channels-redis' plain msgpack beside the signed one.

Batches as the listener makes them (realtime.pipeline.bus.change_message over rows shaped like the
detectors'), of 1, 10, 100 and 500 changes, and one of 512 KiB (BATCH_MAX_BYTES). No
services: the channel layer's serializer only.

    python bench/bus_signing_cost.py [--repeats 2000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def change(event_id: int, image: str) -> Any:
    return {
        "id": event_id,
        "table": "violation_ppedetections",
        "op": "INSERT",
        "data": {
            "id": event_id,
            "camera_id": event_id % 16,
            "violation_date": "2026-12-01",
            "violation_time": "10:11:12",
            "violation_image": image,
        },
    }


def batch(changes: list[Any]) -> dict[str, Any]:
    from realtime.pipeline.bus import BATCH_TYPE, change_message

    return {
        "type": BATCH_TYPE,
        "changes": [change_message(c) for c in changes],
        "deployment": "7441295839417724185/plant",
    }


def median_us(work: Callable[[], object], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e6


def round_trip(serializer: Any, message: dict[str, Any]) -> Callable[[], object]:
    return lambda: serializer.deserialize(serializer.serialize(message))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=2000)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/unused")
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-secret-key-0123456789abcdefghijkl")
    os.environ.setdefault("REALTIME_ENV_FILE", "")  # not the checkout's .env (make run's)
    import django

    django.setup()
    from channels_redis.serializers import MsgPackSerializer

    from realtime.pipeline.signing import SignedSerializer

    batches = {
        f"{n} change{'s' if n > 1 else ''}": batch(
            [change(i, f"/media/cam07/2026-12-01/{i:08d}.jpg") for i in range(n)]
        )
        for n in (1, 10, 100, 500)
    }
    batches["512 KiB (2 changes)"] = batch([change(i, "/media/" + "z" * 256_000) for i in range(2)])
    print("| batch | bytes | msgpack: send + receive | signed: send + receive | added |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, message in batches.items():
        plain, signed = MsgPackSerializer(), SignedSerializer()
        size = len(signed.serialize(message))
        # Each serialize takes a new nonce: every message is new to the bridge.
        plain_us = median_us(round_trip(plain, message), args.repeats)
        signed_us = median_us(round_trip(signed, message), args.repeats)
        print(
            f"| {name} | {size:,} | {plain_us:.1f} µs | {signed_us:.1f} µs"
            f" | {signed_us - plain_us:+.1f} µs |"
        )


if __name__ == "__main__":
    main()
