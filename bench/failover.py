"""Failover of the prod PostgreSQL cluster's Patroni settings, measured with Debian's Patroni, etcd and PostgreSQL.

Three members on loopback get the prod stack's Patroni settings (`components.postgres.patroni_dcs`). Each run
kills the primary (SIGKILL to Patroni and all of PostgreSQL: a lost node) under a steady single-row write load and
reports the write outage (kill to the first acknowledged commit on the new primary), acknowledged commits lost,
and the seconds until the old primary streams again as a replica. Switchovers are measured the same way.

    .venv/bin/python -m bench.failover [--runs 5] [--switchovers 3]

Prints numbers; asserts nothing. Runs as root (PostgreSQL runs as the postgres user) or as that user.
"""

from __future__ import annotations

import argparse
import statistics

from tests.failover.patroni_cluster import PatroniCluster, failover_once, prod_dcs, switchover_once


def _summary(name: str, results) -> None:
    outages = sorted(r.write_outage_seconds for r in results)
    print(f"{name}: {len(results)} runs")
    print(f"  write outage s: p50 {statistics.median(outages):.1f}, min {outages[0]:.1f}, max {outages[-1]:.1f}"
          f"  ({', '.join(f'{o:.1f}' for o in outages)})")
    print(f"  acknowledged commits lost: {sum(r.lost for r in results)} of {sum(r.acknowledged for r in results)}")
    print(f"  old primary streaming again after s: max {max(r.rejoin_seconds for r in results):.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--switchovers", type=int, default=3)
    args = parser.parse_args()
    dcs = prod_dcs()
    print(f"Patroni: ttl {dcs['ttl']} s, loop_wait {dcs['loop_wait']} s, retry_timeout {dcs['retry_timeout']} s, "
          f"synchronous_mode {dcs['synchronous_mode']}")
    cluster = PatroniCluster(dcs).start()
    try:
        failovers = [failover_once(cluster) for _ in range(args.runs)]
        _summary("failover (primary killed)", failovers)
        if args.switchovers:
            _summary("switchover (planned)", [switchover_once(cluster) for _ in range(args.switchovers)])
    finally:
        cluster.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
