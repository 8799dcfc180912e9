-- Version 2 (slaflow 0.6): an alert names its KPI instance (to join it with kpi_durations and kpi_transitions),
-- and every row says which Kafka message it came from. Rows written by version 1 get the instance computed from
-- their own columns and source offset -1 (unknown).
ALTER TABLE {db}.sla_alerts
    ADD COLUMN IF NOT EXISTS instance_id String DEFAULT concat(record_id, '/', kpi, '/', toString(kpi_instance))
        COMMENT 'record_id/kpi/instance: the KPI instance this alert belongs to' AFTER alert_id,
    ADD COLUMN IF NOT EXISTS source_partition Int32 DEFAULT -1 COMMENT 'Kafka partition of the alerts message' AFTER revoked,
    ADD COLUMN IF NOT EXISTS source_offset Int64 DEFAULT -1 COMMENT 'Kafka offset of the alerts message' AFTER source_partition
