"""Load benchmark for the API: requests/s and latency percentiles per scenario, with where the time goes.

Starts real PostgreSQL, Redis and milvus-lite on loopback, runs the server as the image does (`python -m real_estate_api.server`), seeds
listings, then drives each scenario with wrk for a fixed time. Prints numbers; asserts nothing.

Scenarios:
  health                 GET /health
  recommend-warm         200 distinct wishes, repeated: mostly cache hits
  recommend-miss         every wish unique: every request a vector search in milvus-lite
  milvus-direct          the same searches straight to milvus-lite from 8 threads: the bound the app cannot beat
  recommend-rules        Milvus stopped, every wish unique: the rule-engine fallback over PostgreSQL
  valuation-large-city   200 000 listings in one city; /health measured at the same time

    apt-get install wrk && .venv/bin/python -m bench.api_load [--seconds 10] [--connections 32] [--large-city 200000]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psycopg
from prometheus_client.parser import text_string_to_metric_families

from tests.services import MilvusLiteServer, PostgresServer, RedisServer, free_port, wait_for_port

APP_DIR = Path(__file__).resolve().parent.parent / "app"
sys.path.insert(0, str(APP_DIR))
from real_estate_api.stores import COLLECTION, listing_vector  # noqa: E402

API_KEY = "bench-api-key-0123456789abcdef"
PROPERTIES = (
    "app.name=real-estate-ai\napp.version=0.0.0\nrecommendation.model=hybrid\nrecommendation.top_k=10\n"
    "evaluation.model=xgboost\nevaluation.confidence_threshold=0.8\n"
)
LARGE_CITY = "Megacity"

# {unique}: 0 repeats 200 wishes (cache hits after the first round); 1 makes every wish new (a miss).
WRK_RECOMMEND = """
local n = 0
local unique = {unique}
request = function()
  n = n + 1
  local i = (n % 200) + 1
  local budget = 1000000 + i * 20000
  if unique == 1 then budget = budget + (n * 7919 + math.random(0, 100000)) % 5000000 end
  local body = string.format(
    '{"user_id":"u%d","city":"%s","budget":%d,"area_sqm":%d,"bedrooms":%d,"latitude":%.3f,"longitude":%.3f}',
    i, (i % 2 == 0) and "Shanghai" or "Beijing", budget, 50 + i % 100, 1 + i % 4, 22 + (i % 18), 113 + (i % 9))
  return wrk.format("POST", wrk.path, {["Content-Type"] = "application/json", ["X-API-Key"] = "{key}"}, body)
end
"""

WRK_VALUATION = """
local n = 0
request = function()
  n = n + 1
  local body = string.format('{"city":"{city}","district":"d%d","area_sqm":%d,"bedrooms":%d}', n % 50, 40 + n % 160, 1 + n % 5)
  return wrk.format("POST", wrk.path, {["Content-Type"] = "application/json", ["X-API-Key"] = "{key}"}, body)
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


def seed_large_city(database_url: str, count: int) -> None:
    """Rows straight into PostgreSQL (valuations read only PostgreSQL), marked indexed so the reconciler leaves them."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO listings (city, district, area_sqm, bedrooms, price, latitude, longitude, indexed_at) "
            "SELECT %s, 'd' || (g %% 50), 40 + (g %% 160), 1 + g %% 5, (40 + (g %% 160)) * (30000 + random() * 40000), "
            "31 + random(), 121 + random(), now() FROM generate_series(1, %s) g",
            (LARGE_CITY, count),
        )
        conn.execute("VACUUM ANALYZE listings")


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


def dependency_seconds(base: str) -> dict[str, tuple[float, float]]:
    """(sum, count) of dependency_request_duration_seconds per dependency."""
    result = {}
    for family in text_string_to_metric_families(httpx.get(f"{base}/metrics").text):
        if family.name == "dependency_request_duration_seconds":
            for sample in family.samples:
                dep = sample.labels.get("dependency")
                total, count = result.get(dep, (0.0, 0.0))
                if sample.name.endswith("_sum"):
                    total = sample.value
                elif sample.name.endswith("_count"):
                    count = sample.value
                result[dep] = (total, count)
    return result


def milvus_direct(url: str, seconds: int, threads: int = 8) -> float:
    """Searches per second straight to milvus-lite, the same filter and top-k as the app's hybrid model."""
    from pymilvus import MilvusClient

    clients = [MilvusClient(uri=url) for _ in range(threads)]
    stop = time.monotonic() + seconds
    done = [0] * threads

    def loop(k: int) -> None:
        rng = random.Random(k)
        while time.monotonic() < stop:
            vector = listing_vector(rng.uniform(1e6, 6e6), rng.uniform(50, 150), rng.randint(1, 4), rng.uniform(22, 40), rng.uniform(113, 122))
            clients[k].search(COLLECTION, data=[vector], limit=30, filter=f'price <= {rng.uniform(1e6, 6e6)!r} and city == "Shanghai"',
                              output_fields=["city", "district", "price", "area_sqm", "bedrooms", "latitude", "longitude"])
            done[k] += 1

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(loop, range(threads)))
    return sum(done) / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--large-city", type=int, default=200_000, help="listings in the valuation scenario's city")
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
            [sys.executable, "-m", "real_estate_api.server", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            cwd=APP_DIR, env=env, stdout=subprocess.DEVNULL,
        )
        wait_for_port(port, 60)
        base = f"http://127.0.0.1:{port}"
        seed(base)
        seed_large_city(postgres.url("real_estate"), args.large_city)
        scripts = {}
        for name, text in (("warm", WRK_RECOMMEND.replace("{unique}", "0")), ("miss", WRK_RECOMMEND.replace("{unique}", "1")),
                           ("valuation", WRK_VALUATION.replace("{city}", LARGE_CITY))):
            scripts[name] = Path(cache.dir) / f"{name}.lua"
            scripts[name].write_text(text.replace("{key}", API_KEY))
        print(f"real_estate_api.server (uvicorn), 1 worker; wrk, 2 threads, {args.connections} connections, {args.seconds} s each; "
              f"loopback, {os.cpu_count()} cores shared by client, server and the stores")
        print(f"{'scenario':<24}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}  where the time goes")

        def run(name: str, url: str, script: Path | None, alongside=None) -> None:
            wrk(url, 2, args.connections, script)  # warm-up: connection pools, cache, the stats of the large city
            before = dependency_seconds(base)
            side: dict = {}
            thread = threading.Thread(target=lambda: side.update(alongside())) if alongside else None
            if thread:
                thread.start()
            r = wrk(url, args.seconds, args.connections, script)
            if thread:
                thread.join()
            after = dependency_seconds(base)
            split = []
            for dep, (total, count) in sorted(after.items()):
                calls = count - before.get(dep, (0, 0))[1]
                if calls >= 0.01 * r["rps"] * args.seconds:  # background work (the reconciler) is not the scenario's
                    split.append(f"{dep} {1000 * (total - before.get(dep, (0, 0))[0]) / calls:.1f} ms × {calls / max(1, r['rps'] * args.seconds):.2f}/req")
            extra = f"; /health meanwhile (4 connections) p99 {side['p99_ms']:.1f} ms" if side else ""
            print(f"{name:<24}{r['rps']:>9.0f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['non_2xx']:>9}  {', '.join(split)}{extra}")

        run("health", f"{base}/health", None)
        run("recommend-warm", f"{base}/v1/recommendations", scripts["warm"])
        run("recommend-miss", f"{base}/v1/recommendations", scripts["miss"])
        print(f"{'milvus-direct':<24}{milvus_direct(milvus.url(), args.seconds):>9.0f}  8 threads, pymilvus straight to milvus-lite")

        run("valuation-large-city", f"{base}/v1/valuations", scripts["valuation"],
            alongside=lambda: wrk(f"{base}/health", args.seconds, 4))
        with psycopg.connect(postgres.url("real_estate")) as conn:
            started = time.perf_counter()
            conn.execute("SELECT count(*), percentile_cont(ARRAY[0.25, 0.5, 0.75]) WITHIN GROUP (ORDER BY price / area_sqm) "
                         "FROM listings WHERE city = %s", (LARGE_CITY,)).fetchone()
            print(f"{'':<24}one uncached aggregate over all {args.large_city} listings of the city: "
                  f"{1000 * (time.perf_counter() - started):.0f} ms (each pod computes it at most once per 30 s)")

        milvus.stop()
        time.sleep(3)
        run("recommend-rules", f"{base}/v1/recommendations", scripts["miss"])
    finally:
        if server:
            server.terminate()
            server.wait(30)
        for s in (milvus, cache, postgres):
            s.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
