"""The local broker's KRaft cluster ids: never read as a command-line option (one random id in 64 began with
'-', and the broker failed to start: every integration test inherited that flake)."""

from __future__ import annotations

import base64

from deploy.kafka.broker import kraft_cluster_id


def test_a_cluster_id_is_16_bytes_of_url_safe_base64_and_never_starts_with_a_dash() -> None:
    ids = [kraft_cluster_id() for _ in range(10_000)]  # without the rule, about 156 of them would start with '-'
    assert not [cluster_id for cluster_id in ids if cluster_id.startswith("-")]
    assert {len(cluster_id) for cluster_id in ids} == {22}
    assert all(len(base64.urlsafe_b64decode(cluster_id + "==")) == 16 for cluster_id in ids)
    assert len(set(ids)) == len(ids)
