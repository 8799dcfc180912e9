"""The settings: environment, then flags; an unusable value is named as the user gave it; documented once."""

from pathlib import Path

import pytest

from agents.settings import Settings
from streams.errors import ConfigError

CONFIGURATION = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_environment_then_flags() -> None:
    settings = Settings.from_env({"KAFKA_BOOTSTRAP": "b:9092", "SLAFLOW_PARTITIONS": "8", "SLAFLOW_DATA_DIR": "/x"})
    assert (settings.kafka_bootstrap, settings.partitions, settings.data_dir) == ("b:9092", 8, Path("/x"))
    assert settings.effective_clickhouse_url == "chdb:///x/clickhouse"
    flagged = settings.replace(partitions="2", topic_prefix=None)
    assert (flagged.partitions, flagged.topic_prefix) == (2, "slaflow")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SLAFLOW_PARTITIONS": "many"}, r"^SLAFLOW_PARTITIONS: expected a whole number, got 'many'$"),
        ({"SLAFLOW_PARTITIONS": "0"}, r"^SLAFLOW_PARTITIONS must be at least 1, got 0$"),
        ({"SLAFLOW_TICK_INTERVAL": "-1"}, r"^SLAFLOW_TICK_INTERVAL must be between 0 and 60 seconds"),
        ({"SLAFLOW_LOG_LEVEL": "loud"}, r"^SLAFLOW_LOG_LEVEL must be one of debug, info, warn, error; got 'loud'$"),
        ({"SLAFLOW_CLICKHOUSE_URL": "clickhouse:8123"}, r"^SLAFLOW_CLICKHOUSE_URL must start with chdb://"),
        ({"SLAFLOW_DISPLAY_TZ": "Mars/Olympus"}, r"^SLAFLOW_DISPLAY_TZ must be an IANA time zone"),
        ({"KAFKA_BOOTSTRAP": "localhost:abc"}, r"^KAFKA_BOOTSTRAP must be host:port\[,host:port\] with a port number"),
        ({"KAFKA_BOOTSTRAP": "b1:9092,:9093"}, r"^KAFKA_BOOTSTRAP must be host:port"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_a_bad_flag_value_names_the_flag() -> None:
    with pytest.raises(ConfigError, match=r"^--partitions must be at least 1, got 0$"):
        Settings().replace({"partitions": "--partitions"}, partitions=0)


def test_every_setting_is_documented_with_its_variable() -> None:
    docs = Settings.documentation()
    assert all(env and doc for _, env, _, doc in docs)
    assert len({env for _, env, _, _ in docs}) == len(docs)


def test_docs_configuration_is_the_generated_table() -> None:
    """docs/configuration.md holds the table ``python -m agents.settings`` prints: regenerate it after a change."""
    text = CONFIGURATION.read_text()
    assert Settings.markdown() in text, "run: python -m agents.settings, and paste the table into docs/configuration.md"
