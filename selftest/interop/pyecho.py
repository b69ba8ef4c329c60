#!/usr/bin/env python3
"""Echo server and clients for selftest/interop/python.sh (stdlib only).

  pyecho.py server PORT            asyncio echo server on 127.0.0.1:PORT; it
                                   speaks first (a 16-byte banner) and half-
                                   closes when the client has.
  pyecho.py aclient PORT SEED      asyncio client: 4 concurrent connections
  pyecho.py sclient PORT SEED      blocking-socket client: 2 threads

Each client connection reads the banner, then writes random payloads of
random sizes (1 B .. 4 MiB, log-uniform) while a concurrent reader reads the
echo; after SHUT_WR it reads to EOF. The sha256 and length of what came back
must equal what was sent. Prints one summary line; exit 0 pass, 1 fail.
"""
import asyncio
import hashlib
import os
import random
import socket
import sys
import threading

BANNER = b"fastloop-echo-v1"          # 16 bytes, sent by the server first
CONNS_ASYNC = 4
CONNS_SOCK = 2
PAYLOADS = 24
MAX_LOG2 = 22                         # 4 MiB


def payload_sizes(rng):
    """Log-uniform sizes so that 1-byte and multi-MiB writes both occur."""
    return [max(1, int(2 ** rng.uniform(0, MAX_LOG2))) for _ in range(PAYLOADS)]


async def serve(port):
    async def handle(reader, writer):
        writer.write(BANNER)
        await writer.drain()
        while True:
            data = await reader.read(1 << 18)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        writer.write_eof()
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, reuse_address=True)
    print("listening", port, flush=True)
    async with server:
        await server.serve_forever()


async def aconn(port, rng, idx):
    """One asyncio client connection; returns (ok, bytes, message)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    banner = await reader.readexactly(len(BANNER))
    if banner != BANNER:
        return False, 0, "conn %d: banner %r" % (idx, banner)
    sizes = payload_sizes(rng)
    sent = hashlib.sha256()
    total = sum(sizes)

    async def write_all():
        for n in sizes:
            data = rng.randbytes(n)
            sent.update(data)
            writer.write(data)
            await writer.drain()
        writer.write_eof()

    async def read_all():
        got, count = hashlib.sha256(), 0
        while True:
            data = await reader.read(1 << 18)
            if not data:
                return got, count
            got.update(data)
            count += len(data)

    _, (got, count) = await asyncio.gather(write_all(), read_all())
    writer.close()
    if count != total or got.digest() != sent.digest():
        return False, count, "conn %d: sent %d B sha %s, echoed %d B sha %s" % (
            idx, total, sent.hexdigest()[:16], count, got.hexdigest()[:16])
    return True, count, ""


async def aclient(port, seed):
    rngs = [random.Random(seed * 1000 + i) for i in range(CONNS_ASYNC)]
    return await asyncio.gather(*(aconn(port, rngs[i], i) for i in range(CONNS_ASYNC)))


def sconn(port, rng, idx, results):
    """One blocking-socket client connection, writer in a second thread."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        banner = b""
        while len(banner) < len(BANNER):
            chunk = s.recv(len(BANNER) - len(banner), socket.MSG_WAITALL)
            if not chunk:
                break
            banner += chunk
        if banner != BANNER:
            results[idx] = (False, 0, "conn %d: banner %r" % (idx, banner))
            return
        sizes = payload_sizes(rng)
        sent = hashlib.sha256()
        blobs = [rng.randbytes(n) for n in sizes]
        for b in blobs:
            sent.update(b)

        def writer():
            for b in blobs:
                s.sendall(b)
            s.shutdown(socket.SHUT_WR)

        t = threading.Thread(target=writer)
        t.start()
        got, count = hashlib.sha256(), 0
        while True:
            data = s.recv(1 << 18)
            if not data:
                break
            got.update(data)
            count += len(data)
        t.join(30)
        s.close()
        total = sum(sizes)
        if count != total or got.digest() != sent.digest():
            results[idx] = (False, count, "conn %d: sent %d B sha %s, echoed %d B sha %s" % (
                idx, total, sent.hexdigest()[:16], count, got.hexdigest()[:16]))
        else:
            results[idx] = (True, count, "")
    except OSError as e:
        results[idx] = (False, 0, "conn %d: %s" % (idx, e))


def sclient(port, seed):
    results = [(False, 0, "conn %d: did not finish" % i) for i in range(CONNS_SOCK)]
    threads = [threading.Thread(target=sconn, args=(port, random.Random(seed * 1000 + 500 + i), i, results))
               for i in range(CONNS_SOCK)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("server", "aclient", "sclient"):
        sys.exit(__doc__)
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "server":
        asyncio.run(serve(port))
        return
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else int.from_bytes(os.urandom(4), "little")
    results = asyncio.run(aclient(port, seed)) if mode == "aclient" else sclient(port, seed)
    bad = [m for ok, _, m in results if not ok]
    total = sum(n for _, n, _ in results)
    print("%s seed=%d connections=%d echoed=%d B checksums %s%s" % (
        mode, seed, len(results), total, "match" if not bad else "DIFFER", "".join("; " + m for m in bad)))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
