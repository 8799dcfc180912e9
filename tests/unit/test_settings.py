from pathlib import Path

import pytest

from agents.settings import Settings
from streams.errors import ConfigError


def test_environment_then_flags() -> None:
    settings = Settings.from_env({"KAFKA_BOOTSTRAP": "b:9092", "SLAFLOW_PARTITIONS": "8", "SLAFLOW_DATA_DIR": "/x"})
    assert (settings.kafka_bootstrap, settings.partitions, settings.data_dir) == ("b:9092", 8, Path("/x"))
    assert settings.effective_clickhouse_url == "chdb:///x/clickhouse"
    flagged = settings.replace(partitions="2", topic_prefix=None)
    assert (flagged.partitions, flagged.topic_prefix) == (2, "slaflow")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SLAFLOW_PARTITIONS": "many"}, "expected int, got 'many'"),
        ({"SLAFLOW_PARTITIONS": "0"}, "SLAFLOW_PARTITIONS"),
        ({"SLAFLOW_TICK_INTERVAL": "-1"}, "SLAFLOW_TICK_INTERVAL"),
        ({"SLAFLOW_LOG_LEVEL": "loud"}, "SLAFLOW_LOG_LEVEL"),
    ],
)
def test_bad_values_name_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_every_setting_is_documented_with_its_variable() -> None:
    docs = Settings.documentation()
    assert all(env and doc for _, env, _, doc in docs)
    assert len({env for _, env, _, _ in docs}) == len(docs)


def test_readme_documents_every_setting() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    missing = [env for _, env, _, _ in Settings.documentation() if f"| `{env}` |" not in readme]
    assert missing == []
