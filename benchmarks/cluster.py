"""Cluster: uploads and emulator generations through a balancer in front of 1 and then 2 `pollux serve` nodes.

Both clusters run at once on loopback, each on its own shared database (a SQLite file, or with
`--postgres` a throwaway PostgreSQL from tests/fixtures/postgres.py), each node with its own data dir. The
balancer is a small round-robin TCP proxy (one per cluster, so both pay the same hop). Rounds interleave
1-node and 2-node runs so drift in machine load hits both alike. Per cluster: requests, req/s, p50 / p99
of each operation, errors, and the 2-node / 1-node throughput ratio.

    python benchmarks/cluster.py [--clients 16] [--seconds 8] [--rounds 2] [--postgres]

On a 2-core machine the nodes, the balancer, the clients (and PostgreSQL) share the same two cores, so a
second node can add little: the ratio measures the overhead and contention, not the scale-out gain.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.load import KEY, MODEL, percentile, png, upload  # noqa: E402
from tests.fixtures.server import Server, free_port  # noqa: E402

OPS = ("upload", "generateContent")


class RoundRobin:
    """A TCP proxy handing each new connection to the next backend (what a balancer does per connection)."""

    def __init__(self, backends: list[int]):
        self.backends = itertools.cycle(backends)
        self.port = free_port()
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> "RoundRobin":
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", next(self.backends))
        except OSError:
            writer.close()
            return
        with contextlib.suppress(asyncio.CancelledError):  # the benchmark ended with the connection open
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    async def stop(self) -> None:
        if self.server:
            self.server.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def run_round(url: str, clients: int, seconds: float, tag: str) -> tuple[dict, dict, float]:
    latency: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    body = {"contents": [{"parts": [{"text": "Describe a red square in one line."}]}],
            "generationConfig": {"maxOutputTokens": 16}}

    async def client(i: int, deadline: float) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=60) as c:
            for n in itertools.count():
                if time.monotonic() >= deadline:
                    return
                op = OPS[(i + n) % 2]
                start = time.perf_counter()
                try:
                    if op == "upload":
                        await upload(c, png(i * 10_000 + n), f"{tag}-{i}-{n}")
                    else:
                        r = await c.post(f"/v1beta/models/{MODEL}:generateContent", headers=KEY, json=body)
                        r.raise_for_status()
                except Exception:  # counted; the client carries on
                    errors[op] += 1
                latency[op].append(time.perf_counter() - start)

    start = time.monotonic()
    await asyncio.gather(*(client(i, start + seconds) for i in range(clients)))
    return latency, errors, time.monotonic() - start


def _database_url(base: Path, name: str, pg) -> str:
    return pg.new_database(name) if pg else f"sqlite:///{base / (name + '.db')}"


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--postgres", action="store_true", help="share a PostgreSQL database instead of a SQLite file")
    args = ap.parse_args()
    os.environ.setdefault("PYTHONPATH", str(ROOT / "src"))

    pg = None
    if args.postgres:
        from tests.fixtures.postgres import PostgresCluster

        pg = PostgresCluster().start()
    base = Path(tempfile.mkdtemp(prefix="pollux-cluster-"))
    servers: list[Server] = []
    proxies: dict[int, RoundRobin] = {}
    try:
        for size in (1, 2):
            env = {"POLLUX_DATABASE_URL": _database_url(base, f"c{size}", pg), "POLLUX_FSYNC": "0"}
            nodes = [Server(base / f"c{size}-n{i}", env=env).start() for i in range(size)]
            servers += nodes
            proxies[size] = await RoundRobin([n.port for n in nodes]).start()
        totals: dict[int, dict] = {1: defaultdict(list), 2: defaultdict(list)}
        errors: dict[int, dict] = {1: defaultdict(int), 2: defaultdict(int)}
        elapsed = {1: 0.0, 2: 0.0}
        for r in range(args.rounds):
            for size in (1, 2) if r % 2 == 0 else (2, 1):  # interleaved, alternating which goes first
                lat, err, took = await run_round(f"http://127.0.0.1:{proxies[size].port}", args.clients,
                                                 args.seconds, f"r{r}n{size}")
                for op in OPS:
                    totals[size][op] += lat[op]
                    errors[size][op] += err[op]
                elapsed[size] += took
        backend = "PostgreSQL" if pg else "SQLite"
        print(f"{args.clients} clients, {args.rounds} rounds x {args.seconds:.0f} s per cluster, shared {backend}, "
              f"{os.cpu_count()} cores, emulator engine, round-robin TCP balancer on loopback")
        print(f"{'nodes':<6}{'operation':<17}{'requests':>9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
        rate = {}
        for size in (1, 2):
            count = 0
            for op in OPS:
                lat = totals[size][op]
                count += len(lat)
                if lat:
                    print(f"{size:<6}{op:<17}{len(lat):>9}{len(lat) / elapsed[size]:>9.1f}"
                          f"{percentile(lat, 50) * 1000:>9.0f}{percentile(lat, 99) * 1000:>9.0f}"
                          f"{errors[size][op]:>8}")
            every = totals[size]["upload"] + totals[size]["generateContent"]
            rate[size] = count / elapsed[size]
            print(f"{size:<6}{'all':<17}{count:>9}{rate[size]:>9.1f}{percentile(every, 50) * 1000:>9.0f}"
                  f"{percentile(every, 99) * 1000:>9.0f}{sum(errors[size].values()):>8}")
        print(f"throughput ratio 2 nodes / 1 node: {rate[2] / rate[1]:.2f} "
              f"(on {os.cpu_count()} cores shared by nodes, balancer and clients: the ceiling is the CPU, not Pollux)")
    finally:
        for p in proxies.values():
            await p.stop()
        for s in servers:
            s.stop()
        if pg:
            pg.stop()


if __name__ == "__main__":
    asyncio.run(main())
