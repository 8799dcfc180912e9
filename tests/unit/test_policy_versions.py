"""The worker archives every policy version it loads, so pinned KPIs keep their definition across restarts."""

from pathlib import Path

import pytest

from agents.app import load_policy_versions
from agents.settings import Settings
from streams.errors import ConfigError

POLICY = """
version: "{version}"
policies:
  - name: vip
    applies_when: {{tier: VIP}}
    kpis:
      - {{name: first_response, target: {target}, start: {{kind: created}}, stop: {{kind: first_response}}}}
"""


def test_earlier_versions_stay_available_and_an_edited_version_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "policies.yaml"
    settings = Settings().replace(policies=file, data_dir=tmp_path / "data")
    file.write_text(POLICY.format(version="v1", target="1h"))
    current, previous = load_policy_versions(settings)
    assert (current.version, previous) == ("v1", [])
    file.write_text(POLICY.format(version="v2", target="2h"))
    current, previous = load_policy_versions(settings)
    assert current.version == "v2" and [p.version for p in previous] == ["v1"]
    assert previous[0].policies[0].kpis[0].target_ms == 3_600_000
    file.write_text(POLICY.format(version="v2", target="3h"))
    with pytest.raises(ConfigError, match="already used with other content"):
        load_policy_versions(settings)
