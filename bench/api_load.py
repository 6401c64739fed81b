"""Load benchmark for the API: requests/s and latency percentiles for /health and a business endpoint.

Starts real PostgreSQL, Redis and milvus-lite on loopback, runs `uvicorn main:app` as the image does,
seeds listings, then drives each endpoint with wrk for a fixed time. Prints numbers; asserts nothing.

    apt-get install wrk && .venv/bin/python -m bench.api_load [--seconds 10] [--connections 32]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx

from tests.services import MilvusLiteServer, PostgresServer, RedisServer, free_port, wait_for_port

APP_DIR = Path(__file__).resolve().parent.parent / "app"
API_KEY = "bench-api-key-0123456789abcdef"
PROPERTIES = (
    "app.name=real-estate-ai\napp.version=0.0.0\nrecommendation.model=hybrid\nrecommendation.top_k=10\n"
    "evaluation.model=xgboost\nevaluation.confidence_threshold=0.8\n"
)


WRK_SCRIPT = """
-- One of a fixed set of bodies per request: a realistic mix of cache hits and misses.
local bodies = {}
for i = 1, 200 do
  bodies[i] = string.format(
    '{"user_id":"u%d","city":"%s","budget":%d,"area_sqm":%d,"bedrooms":%d,"latitude":%.3f,"longitude":%.3f}',
    i, (i % 2 == 0) and "Shanghai" or "Beijing", 1000000 + i * 20000, 50 + i % 100, 1 + i % 4,
    22 + (i % 18), 113 + (i % 9))
end
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", wrk.path, {["Content-Type"] = "application/json", ["X-API-Key"] = "API_KEY"}, bodies[(n % 200) + 1])
end
"""


def seed(base: str, listings: int = 500) -> None:
    rng = random.Random(7)
    with httpx.Client(base_url=base, headers={"X-API-Key": API_KEY}, timeout=30) as client:
        for i in range(listings):
            body = {
                "city": rng.choice(["Shanghai", "Beijing"]), "district": f"d{i % 7}",
                "area_sqm": rng.uniform(40, 200), "bedrooms": rng.randint(1, 5), "price": rng.uniform(5e5, 1e7),
                "latitude": rng.uniform(22, 40), "longitude": rng.uniform(113, 122),
            }
            client.post("/v1/listings", json=body).raise_for_status()


def wrk(url: str, seconds: int, connections: int, script: Path | None = None) -> dict:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script:
        command += ["-s", str(script)]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    percentiles = {p: _ms(v, unit) for p, v, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)$", output, re.M)}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {"rps": rps, "p50_ms": percentiles["50"], "p99_ms": percentiles["99"], "non_2xx": int(errors.group(1)) if errors else 0}


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("bench needs wrk (Debian package 'wrk'): apt-get install wrk", file=sys.stderr)
        return 2
    postgres = PostgresServer().init().start()
    cache = RedisServer().start()
    milvus = MilvusLiteServer().start()
    server = None
    try:
        postgres.psql("CREATE DATABASE real_estate")
        properties = Path(cache.dir) / "app.properties"
        properties.write_text(PROPERTIES)
        port = free_port()
        env = {**os.environ, "DATABASE_URL": postgres.url("real_estate"), "REDIS_URL": cache.url(), "MILVUS_URL": milvus.url(),
               "API_KEY": API_KEY, "APP_PROPERTIES": str(properties)}
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "main:app", "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning"],
            cwd=APP_DIR, env=env, stdout=subprocess.DEVNULL,
        )
        wait_for_port(port, 60)
        base = f"http://127.0.0.1:{port}"
        seed(base)
        script = Path(cache.dir) / "recommendations.lua"
        script.write_text(WRK_SCRIPT.replace('"API_KEY"', f'"{API_KEY}"'))
        print(f"uvicorn main:app, 1 worker; wrk, 2 threads, {args.connections} connections, {args.seconds} s each; "
              f"loopback, {os.cpu_count()} cores shared by client and server")
        print(f"{'endpoint':<28}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}")
        for name, url, lua in (("GET /health", f"{base}/health", None),
                               ("POST /v1/recommendations", f"{base}/v1/recommendations", script)):
            wrk(url, 2, args.connections, lua)  # warm-up: connection pools, cache
            r = wrk(url, args.seconds, args.connections, lua)
            print(f"{name:<28}{r['rps']:>9.0f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['non_2xx']:>9}")
    finally:
        if server:
            server.terminate()
            server.wait(30)
        for s in (milvus, cache, postgres):
            s.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
