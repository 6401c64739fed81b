"""A standby cluster in a second "region" on loopback: its own etcd and Patroni members, following another
PatroniCluster's primary by streaming replication, as the operator's spec.standby with `host` configures Patroni
(`standby_cluster` in the dynamic configuration). Promotion is what the operator does when spec.standby.enabled
turns false: the dynamic configuration loses `standby_cluster`, and Patroni promotes the standby leader.
"""

from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import dataclass
from typing import Optional

import psycopg

from tests.failover.patroni_cluster import Member, PatroniCluster, Writer


class StandbyCluster(PatroniCluster):
    def __init__(self, primary: PatroniCluster, members: int = 2):
        leader = primary.leader()
        assert leader is not None, "the primary cluster has no leader to follow"
        dcs = {**primary.dcs, "standby_cluster": {"host": "127.0.0.1", "port": leader.pg_port,
                                                  "create_replica_methods": ["basebackup"]}}
        super().__init__(dcs, members, scope=f"{primary.scope}-standby")

    def standby_leader(self) -> Optional[Member]:
        for member in self.members:
            status = member.status()
            if status.get("role") == "standby_leader" and status.get("state") in ("running", "streaming"):
                return member
        return None

    def start(self, timeout: float = 180) -> "StandbyCluster":
        self.etcd.start()
        self.members[0].start()
        self.wait_for(lambda: self.standby_leader() is not None, timeout, "no standby leader took a base backup")
        for member in self.members[1:]:
            member.start()
        self.wait_for(lambda: len(self.streaming_replicas()) == len(self.members) - 1, timeout, "the standby's replicas did not start")
        return self

    def promote(self) -> None:
        """The operator's promotion: the dynamic configuration without `standby_cluster`."""
        member = self.standby_leader() or self.members[0]
        request = urllib.request.Request(
            f"http://127.0.0.1:{member.api_port}/config", data=json.dumps({"standby_cluster": None}).encode(), method="PATCH",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200, response.read()

    def ids(self) -> set[int]:
        with psycopg.connect(self.conninfo().replace("target_session_attrs=read-write", "target_session_attrs=any"), autocommit=True) as conn:
            return {row[0] for row in conn.execute("SELECT id FROM ledger")}


@dataclass
class RegionLoss:
    acknowledged: int
    lost: int
    # Seconds of acknowledged commits the promoted standby lacks (0 when it has the last one).
    rpo_seconds: float
    # From the promotion request to the first commit the promoted cluster acknowledges.
    promotion_seconds: float


def region_loss_once(primary: PatroniCluster, standby: StandbyCluster, settle_seconds: float = 5.0) -> RegionLoss:
    """A steady writer on the primary region, the whole region lost at once (every member and its consensus store),
    the standby promoted; what it holds of what the primary acknowledged, and how long until it takes writes."""
    with psycopg.connect(primary.conninfo(), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS ledger (id bigint PRIMARY KEY)")
        conn.execute("TRUNCATE ledger")
    writer = Writer(primary)
    writer.start()
    time.sleep(settle_seconds)
    for member in primary.members:
        member.kill()
    primary.etcd.stop()
    log = writer.stop()

    started = time.monotonic()
    standby.promote()
    standby.wait_for(lambda: standby.leader() is not None, 120, "the standby did not promote")

    def writable() -> bool:
        try:
            with psycopg.connect(standby.conninfo(), autocommit=True) as conn:
                conn.execute("INSERT INTO ledger (id) VALUES (-1) ON CONFLICT DO NOTHING")
            return True
        except psycopg.Error:
            return False

    standby.wait_for(writable, 120, "the promoted standby took no write", 0.1)
    promotion = time.monotonic() - started
    present = standby.ids()
    lost = [i for i in log.acknowledged if i not in present]
    newest_kept = max((t for i, t in zip(log.acknowledged, log.ack_times) if i in present), default=None)
    rpo = (log.ack_times[-1] - newest_kept) if newest_kept is not None and log.ack_times else float("inf")
    return RegionLoss(acknowledged=len(log.acknowledged), lost=len(lost), rpo_seconds=rpo, promotion_seconds=promotion)
