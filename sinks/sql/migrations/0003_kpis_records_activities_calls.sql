-- Version 3 (slaflow 0.6): every measured duration and the raw material of bottleneck analysis.
--
-- Every table is a ReplacingMergeTree whose ORDER BY is the identity of what a row describes, so that a replay
-- of a topic, or an insert retried after a lost acknowledgement, leaves one row per identity: query with FINAL
-- (the views do). Times are DateTime64(3, 'UTC'); durations are milliseconds (Int64). Partitions are months of
-- a time that does not change for a given identity (the KPI's start, the event's time), so that a duplicate
-- meets its original: FINAL collapses duplicates within a partition. (A correction that moves a KPI's start
-- into another month would leave the superseded row in the old month's partition.)

-- Every change of a KPI that is not an alert (topic kpi-transitions): started, paused, resumed, re-targeted,
-- reopened, succeeded, cancelled. The highest revision of a transition_id is the truth.
CREATE TABLE IF NOT EXISTS {db}.kpi_transitions
(
    transition_id       String COMMENT 'record_id/kpi/instance/kind[/sequence]',
    instance_id         String COMMENT 'record_id/kpi/instance',
    kind                LowCardinality(String) COMMENT 'KPI_STARTED, KPI_PAUSED, KPI_RESUMED, KPI_RETARGETED, KPI_REOPENED, KPI_SUCCEEDED, KPI_CANCELLED',
    record_id           String,
    entity_type         LowCardinality(String),
    policy              LowCardinality(String),
    policy_version      LowCardinality(String),
    kpi                 LowCardinality(String),
    kpi_instance        UInt32,
    sequence            UInt32,
    at                  DateTime64(3, 'UTC') COMMENT 'when the transition happened (event time)',
    started_at          DateTime64(3, 'UTC') COMMENT 'KPI clock start',
    deadline            Nullable(DateTime64(3, 'UTC')) COMMENT 'deadline in force just before the transition; NULL while paused',
    target_ms           Int64 COMMENT 'target, business milliseconds',
    business_elapsed_ms Int64 COMMENT 'business time from start to at, ms',
    wall_elapsed_ms     Int64 COMMENT 'wall time from start to at, ms',
    paused_ms           Int64 COMMENT 'paused wall time from start to at, ms',
    reason              LowCardinality(String),
    tier                LowCardinality(String),
    priority            LowCardinality(String),
    queue               LowCardinality(String),
    owner               LowCardinality(String),
    attributes          Map(String, String),
    revision            UInt32,
    revoked             Bool,
    emitted_at          DateTime64(3, 'UTC') COMMENT 'watermark when the worker emitted it',
    source_partition    Int32,
    source_offset       Int64,
    inserted_at         DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(revision)
PARTITION BY toYYYYMM(started_at)
ORDER BY (kpi, record_id, transition_id);

-- The measured end of each KPI instance (topic kpi-durations): met, breached or cancelled, with business, wall
-- and paused time. A reopened instance ends again with a higher sequence; a correction raises the revision:
-- version = sequence * 2^32 + revision keeps the latest end. A revoked end means the KPI is open again.
CREATE TABLE IF NOT EXISTS {db}.kpi_durations
(
    instance_id         String COMMENT 'record_id/kpi/instance (the duration_id of the message)',
    record_id           String,
    entity_type         LowCardinality(String),
    policy              LowCardinality(String),
    policy_version      LowCardinality(String),
    kpi                 LowCardinality(String),
    kpi_instance        UInt32,
    outcome             LowCardinality(String) COMMENT 'met, breached or cancelled',
    breached            Bool COMMENT 'the deadline had passed when it ended',
    started_at          DateTime64(3, 'UTC'),
    ended_at            DateTime64(3, 'UTC'),
    deadline            Nullable(DateTime64(3, 'UTC')) COMMENT 'deadline in force when it ended; NULL if paused then',
    target_ms           Int64 COMMENT 'target, business milliseconds',
    business_ms         Int64 COMMENT 'business time used, pauses excluded: what the target is measured against',
    wall_ms             Int64 COMMENT 'wall time from start to end',
    paused_ms           Int64 COMMENT 'wall time paused between start and end',
    tier                LowCardinality(String),
    priority            LowCardinality(String),
    queue               LowCardinality(String),
    owner               LowCardinality(String),
    category            LowCardinality(String),
    attributes          Map(String, String),
    sequence            UInt32 COMMENT 'times the instance was reopened before this end',
    revision            UInt32,
    revoked             Bool COMMENT 'a correction withdrew this end: the KPI is open again',
    version             UInt64 MATERIALIZED bitShiftLeft(toUInt64(sequence), 32) + revision,
    source_partition    Int32,
    source_offset       Int64,
    inserted_at         DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(started_at)
ORDER BY (kpi, record_id, kpi_instance);

-- Every record event (topic case-events): what happened to a case, lead, order, ... with the record's status,
-- queue and owner as of that event ('' when the event did not carry them: an event may carry only what changed).
-- The status_segments view cuts them into time spent per status, queue and owner.
CREATE TABLE IF NOT EXISTS {db}.record_events
(
    event_id            String,
    record_id           String,
    entity_type         LowCardinality(String),
    kind                LowCardinality(String),
    occurred_at         DateTime64(3, 'UTC'),
    status              LowCardinality(String),
    queue               LowCardinality(String),
    owner               LowCardinality(String),
    tier                LowCardinality(String),
    priority            LowCardinality(String),
    category            LowCardinality(String),
    attributes          Map(String, String),
    source_partition    Int32,
    source_offset       Int64,
    inserted_at         DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (entity_type, record_id, occurred_at, event_id);

-- Activities regarding a record: e-mails in and out, phone calls, appointments, notes, time logs. From activity
-- events, and from record events that are activities in the CRM's own words (see sinks/rows.py): email_received
-- and email_sent on a case (an inbound and an outbound e-mail), and the call_ kinds of a record other than a
-- phone_call (call_answered on a case: an agent's phone_call regarding the case, with the event's kind; its
-- activity_id is the call's id in call_events, duration_ms its handle time).
CREATE TABLE IF NOT EXISTS {db}.activities
(
    event_id            String,
    activity_id         String,
    activity_type       LowCardinality(String) COMMENT 'email, phone_call, appointment, note, time_log',
    kind                LowCardinality(String),
    direction           LowCardinality(String) COMMENT 'inbound, outbound or empty',
    regarding_id        String COMMENT 'the case, contract, ... the activity belongs to',
    regarding_type      LowCardinality(String),
    occurred_at         DateTime64(3, 'UTC'),
    duration_ms         Nullable(Int64) COMMENT 'time worked or call length, ms',
    wait_ms             Nullable(Int64) COMMENT 'for a call: time the caller waited, ms',
    owner               LowCardinality(String) COMMENT 'the agent (attribute owner or agent)',
    queue               LowCardinality(String),
    attributes          Map(String, String),
    source_partition    Int32,
    source_offset       Int64,
    inserted_at         DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (regarding_type, regarding_id, occurred_at, event_id);

-- Telephony events of every call: from the calls topic, from phone_call record events (call_offered,
-- call_answered, call_abandoned, callback_completed ...: the kind without its call_ prefix; the record is the
-- call), and from the call_ record events of other records (call_answered on a case or a lead: an agent's call
-- about the record, a call of its own unless the event carries a call_id; case_id is the record when it is a
-- case; see sinks/rows.py). The telephony_calls view makes one row per call of them.
CREATE TABLE IF NOT EXISTS {db}.call_events
(
    event_id            String,
    call_id             String,
    kind                LowCardinality(String) COMMENT 'offered, queued, answered, abandoned, transferred, ended, ...',
    direction           LowCardinality(String) COMMENT 'inbound or outbound',
    queue               LowCardinality(String),
    agent               LowCardinality(String),
    case_id             String COMMENT 'the case the call belongs to; empty when none',
    occurred_at         DateTime64(3, 'UTC'),
    wait_ms             Nullable(Int64) COMMENT 'time the caller waited before answer or hang-up, ms, when the source says',
    handle_ms           Nullable(Int64) COMMENT 'talk plus wrap-up time, ms, when the source says',
    tier                LowCardinality(String),
    attributes          Map(String, String),
    source_partition    Int32,
    source_offset       Int64,
    inserted_at         DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (call_id, occurred_at, event_id)
