"""Wait until the local Kafka broker answers a metadata request.

An open port is not enough: a KRaft broker accepts connections before it has caught up with
the metadata log and registered itself. We ask the cluster to describe itself (DescribeCluster
via aiokafka's admin client) and succeed once the answer lists at least one broker and a
controller.

Used by `kafka.sh wait`. Exit 0 when ready; 1 on deadline or when the broker process dies
(`--pid`), so callers never wait the full deadline for a JVM that already crashed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time

from aiokafka.admin import AIOKafkaAdminClient


def _alive(pid: int | None) -> bool:
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


async def _describe(bootstrap: str, timeout_s: float) -> dict:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        request_timeout_ms=int(timeout_s * 1000),
        client_id="kafka-wait-ready",
    )
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        return await asyncio.wait_for(admin.describe_cluster(), timeout_s)
    finally:
        await admin.close()


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    p.add_argument("--timeout", type=float, default=90.0, help="overall deadline in seconds")
    p.add_argument("--pid", type=int, default=None, help="fail at once if this process exits")
    args = p.parse_args()

    # aiokafka logs every refused connection at ERROR while the broker boots; we report
    # progress ourselves.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)

    start = time.monotonic()
    deadline = start + args.timeout
    attempt = 0
    last_error = "no attempt made"
    last_print = start
    while True:
        attempt += 1
        if not _alive(args.pid):
            print(f"kafka: broker process {args.pid} exited while waiting", file=sys.stderr)
            return 1
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            info = await _describe(args.bootstrap, min(5.0, max(remaining, 0.5)))
            brokers = info.get("brokers") or []
            if brokers and info.get("controller_id", -1) != -1:
                ids = sorted(b["node_id"] for b in brokers)
                print(
                    f"kafka: ready at {args.bootstrap} after {time.monotonic() - start:.1f}s "
                    f"(cluster {info.get('cluster_id')}, brokers {ids}, "
                    f"controller {info['controller_id']})"
                )
                return 0
            last_error = f"metadata answered without brokers/controller: {info!r}"
        except Exception as exc:  # any failure means "not ready yet"
            text = str(exc)
            name = type(exc).__name__
            last_error = text if text.startswith(name) else f"{name}: {text}"
        now = time.monotonic()
        if now - last_print >= 2:  # poll often (a fast start matters in tests), print less
            last_print = now
            print(
                f"kafka: waiting for {args.bootstrap} "
                f"({now - start:.0f}s/{args.timeout:.0f}s, attempt {attempt}: {last_error})",
                flush=True,
            )
        await asyncio.sleep(min(0.25, max(deadline - time.monotonic(), 0)))

    print(
        f"kafka: broker at {args.bootstrap} not ready after {args.timeout:.0f}s; "
        f"last error: {last_error}",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
