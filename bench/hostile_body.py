"""A 50 MB anonymous POST against a running service, and the server's peak memory (ADR 0030).

``python -m bench.hostile_body`` starts each service named (default: registration, whose
POST /v1/accounts needs a token, and enforcement, whose POST /v1/complaints is public) with
uvicorn on a free loopback port over a scratch SQLite database (routes only: no relay, no
consumers, so no Kafka), then sends it a 50 MB JSON body (one 50 MB string) without a
token, once with ``Content-Length`` and once chunked. For each it prints the answer, how
many body bytes the server took before answering, and the server process's peak resident
memory (``VmHWM`` of /proc/<pid>/status) before and after.

Not part of ``python -m bench`` (that measures the event kernel); run it by hand, e.g.
against an earlier commit's code to compare.
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import free_port

ROOT = Path(__file__).resolve().parents[1]
ROUTES = {"registration": "/v1/accounts", "enforcement": "/v1/complaints",
          "verification": "/v1/protected-names", "transfer": "/v1/transfers",
          "credit": "/v1/metrics"}
SERVER = """
import asyncio, importlib, sys
import uvicorn
from libs.events.migrate import upgrade
name, port, url = sys.argv[1], int(sys.argv[2]), sys.argv[3]
boot = importlib.import_module(f"services.{name}.bootstrap")
upgrade(url, boot.MIGRATIONS)
app = importlib.import_module(f"services.{name}.main").app
app.state.runtime = boot.bootstrap(importlib.import_module(
    f"services.{name}.settings").Settings(database_url=url))
uvicorn.run(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
"""


def memory(pid: int) -> dict[str, int]:
    """VmHWM and VmRSS of ``pid``, in KiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            out[key] = int(value.split()[0])
    return out


def post(port: int, path: str, size: int, *, chunked: bool) -> tuple[str, int]:
    """Send the body until the server answers; (status line, body bytes sent)."""
    head, tail = b'{"pad": "', b'"}'
    fill = size - len(head) - len(tail)
    framing = (b"Transfer-Encoding: chunked\r\n" if chunked
               else f"Content-Length: {size}\r\n".encode())
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                 .encode() + framing + b"\r\n")
    sent, piece = 0, 64 * 1024
    answer = b""

    def frame(data: bytes) -> bytes:
        return b"%x\r\n%s\r\n" % (len(data), data) if chunked else data

    try:
        parts = [head] + [b"a" * min(piece, fill - i) for i in range(0, fill, piece)] + [tail]
        for data in parts:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            sock.sendall(frame(data))
            sent += len(data)
        else:
            if chunked:
                sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    sock.settimeout(60)
    try:
        while b"\r\n" not in answer:
            more = sock.recv(65536)
            if not more:
                break
            answer += more
    except (ConnectionResetError, TimeoutError):
        pass
    sock.close()
    return answer.split(b"\r\n", 1)[0].decode() or "(no answer)", sent


def run(service: str, size: int) -> None:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "ENVIRONMENT": "development"}
        proc = subprocess.Popen([sys.executable, "-c", SERVER, service, str(port),
                                 f"sqlite+aiosqlite:///{tmp}/{service}.db"], cwd=ROOT, env=env)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise SystemExit(f"{service} did not start") from None
                    time.sleep(0.2)
            before = memory(proc.pid)
            print(f"{service}: idle VmHWM {before['VmHWM'] / 1024:.1f} MiB, "
                  f"VmRSS {before['VmRSS'] / 1024:.1f} MiB")
            for chunked in (False, True):
                status, sent = post(port, ROUTES[service], size, chunked=chunked)
                time.sleep(0.5)  # let the server finish with the request it answered
                after = memory(proc.pid)
                print(f"  anonymous POST {ROUTES[service]} {size / 2**20:.0f} MiB "
                      f"{'chunked' if chunked else 'Content-Length'}: {status!r}, "
                      f"client had pushed {sent / 2**20:.2f} MiB when the answer came, VmHWM "
                      f"{after['VmHWM'] / 1024:.1f} MiB "
                      f"(+{(after['VmHWM'] - before['VmHWM']) / 1024:.1f} MiB)")
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.hostile_body", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("services", nargs="*", default=["registration", "enforcement"],
                   help=f"of {', '.join(ROUTES)} (default: registration enforcement)")
    p.add_argument("--mib", type=int, default=50, help="body size in MiB (default 50)")
    args = p.parse_args()
    if unknown := set(args.services) - set(ROUTES):
        p.error(f"unknown service(s): {sorted(unknown)}")
    for service in args.services:
        run(service, args.mib * 2**20)


if __name__ == "__main__":
    main()
