"""What the server's request limits cost (app/real_estate_api/server.py): the same app served by the image's server
(uvicorn with the guarded protocol) and by plain uvicorn, side by side against the same real PostgreSQL, Redis and
milvus-lite, driven in alternating rounds by wrk: requests/s of `GET /health` (HTTP parsing and middleware, nothing
else) and of a cached recommendation (the business path through GuardRequests). Prints each round and the ratio
guarded/plain per scenario (medians); asserts nothing.

    apt-get install wrk && .venv/bin/python -m bench.server_limits [--seconds 5] [--rounds 3] [--connections 32]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from bench.api_load import API_KEY, APP_DIR, PROPERTIES, WRK_RECOMMEND, seed, wrk
from tests.services import MilvusLiteServer, PostgresServer, RedisServer, free_port, wait_for_port

SERVERS = {
    "guarded": ["-m", "real_estate_api.server", "--log-level", "warning"],
    "plain": ["-m", "uvicorn", "main:app", "--no-access-log", "--log-level", "warning", "--timeout-keep-alive", "5"],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("bench needs wrk (Debian package 'wrk'): apt-get install wrk", file=sys.stderr)
        return 2
    postgres = PostgresServer().init().start()
    cache, milvus = RedisServer().start(), MilvusLiteServer().start()
    processes = []
    try:
        postgres.psql("CREATE DATABASE real_estate")
        properties = Path(cache.dir) / "app.properties"
        properties.write_text(PROPERTIES)
        env = {**os.environ, "DATABASE_URL": postgres.url("real_estate"), "REDIS_URL": cache.url(), "MILVUS_URL": milvus.url(),
               "API_KEY": API_KEY, "APP_PROPERTIES": str(properties)}
        bases = {}
        for name, command in SERVERS.items():
            port = free_port()
            processes.append(subprocess.Popen([sys.executable, *command, "--host", "127.0.0.1", "--port", str(port)],
                                              cwd=APP_DIR, env=env, stdout=subprocess.DEVNULL))
            wait_for_port(port, 60)
            bases[name] = f"http://127.0.0.1:{port}"
        seed(bases["guarded"])
        script = Path(cache.dir) / "warm.lua"
        script.write_text(WRK_RECOMMEND.replace("{unique}", "0").replace("{key}", API_KEY))
        scenarios = {"health": ("/health", None), "recommend-warm": ("/v1/recommendations", script)}
        print(f"one uvicorn worker each; wrk, 2 threads, {args.connections} connections, {args.seconds} s per run, "
              f"{args.rounds} alternating rounds; {os.cpu_count()} cores shared by client, servers and the stores")
        results: dict[tuple[str, str], list[float]] = {}
        for scenario, (path, lua) in scenarios.items():
            for name, base in bases.items():
                wrk(base + path, 2, args.connections, lua)  # warm-up
            for round_ in range(args.rounds):
                for name, base in (bases.items() if round_ % 2 == 0 else reversed(bases.items())):
                    rate = wrk(base + path, args.seconds, args.connections, lua)["rps"]
                    results.setdefault((scenario, name), []).append(rate)
                    print(f"  {scenario:<16}{name:<9}round {round_ + 1}: {rate:8.0f} req/s")
        for scenario in scenarios:
            guarded, plain = (statistics.median(results[(scenario, n)]) for n in ("guarded", "plain"))
            print(f"{scenario:<16} guarded {guarded:8.0f} req/s, plain {plain:8.0f} req/s, ratio {guarded / plain:.3f}")
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)
        for server in (milvus, cache, postgres):
            server.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
