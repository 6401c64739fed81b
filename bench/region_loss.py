"""Region loss, measured: a primary region (two Patroni members with the prod stack's settings) and a standby
region following it by streaming (the operator's spec.standby with host), on loopback with Debian's Patroni, etcd and
PostgreSQL. Each run writes one row at a time on the primary, loses the whole primary region at once (every member
SIGKILLed and its consensus store gone), promotes the standby as the operator does, and reports the acknowledged
commits the standby lacks (as seconds of writes: the RPO) and the seconds from the promotion request to the first
write it acknowledges (the promotion's share of the RTO).

    .venv/bin/python -m bench.region_loss [--runs 5]

Restoring from the off-site repository instead is `bench.backup_rpo_rto` (RPO up to archive_timeout, RTO the
restore plus WAL replay). Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics

from tests.failover.patroni_cluster import PatroniCluster, prod_dcs
from tests.failover.standby_cluster import StandbyCluster, region_loss_once


def _line(name: str, values: list[float]) -> str:
    values = sorted(values)
    return (f"  {name}: p50 {statistics.median(values):.2f}, min {values[0]:.2f}, max {values[-1]:.2f}"
            f"  ({', '.join(f'{v:.2f}' for v in values)})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    results = []
    for _ in range(args.runs):
        primary = PatroniCluster(prod_dcs(), members=2, scope="region-a").start()
        standby = None
        try:
            standby = StandbyCluster(primary).start()
            results.append(region_loss_once(primary, standby))
        finally:
            primary.cleanup()
            if standby is not None:
                standby.cleanup()
    print(f"streaming standby, primary region lost: {len(results)} runs")
    print(_line("RPO s (acknowledged writes the standby lacks)", [r.rpo_seconds for r in results]))
    print(f"  acknowledged commits lost: {sum(r.lost for r in results)} of {sum(r.acknowledged for r in results)}"
          f" ({', '.join(str(r.lost) for r in results)})")
    print(_line("promotion s (request to first acknowledged write)", [r.promotion_seconds for r in results]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
