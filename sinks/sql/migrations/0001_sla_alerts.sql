-- Version 1 (slaflow 0.5): the SLA alerts, as the worker's in-process sink created them.
-- One row per alert; a replay or a retry writes the same alert_id again and ReplacingMergeTree(revision) keeps
-- one row per alert (query with FINAL, or through the views), the highest revision winning.
CREATE TABLE IF NOT EXISTS {db}.sla_alerts
(
    alert_id            String COMMENT 'record_id/kpi/instance/kind: stable across replays',
    kind                LowCardinality(String) COMMENT 'WARNING or BREACH',
    record_id           String,
    entity_type         LowCardinality(String),
    policy              LowCardinality(String),
    policy_version      LowCardinality(String),
    kpi                 LowCardinality(String),
    kpi_instance        UInt32,
    started_at          DateTime64(3, 'UTC') COMMENT 'KPI clock start',
    threshold_at        DateTime64(3, 'UTC') COMMENT 'warning point or deadline this alert refers to',
    deadline            DateTime64(3, 'UTC'),
    fired_at            DateTime64(3, 'UTC') COMMENT 'event time (watermark) when the core fired it',
    target_ms           Int64 COMMENT 'target, business milliseconds',
    business_elapsed_ms Int64 COMMENT 'business time from start to threshold, ms',
    wall_elapsed_ms     Int64 COMMENT 'wall time from start to threshold, ms',
    paused_ms           Int64 COMMENT 'paused wall time between start and threshold, ms',
    tier                LowCardinality(String),
    priority            LowCardinality(String),
    queue               LowCardinality(String),
    owner               String,
    attributes          Map(String, String),
    level               UInt16 COMMENT 'escalation level; 0 for warnings and breaches',
    revision            UInt32 COMMENT '0, then +1 for each correction; the highest revision is the truth',
    revoked             Bool COMMENT 'a correction withdrew this alert',
    inserted_at         DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(revision)
PARTITION BY toYYYYMM(threshold_at)
ORDER BY (kpi, kind, record_id, kpi_instance, level)
