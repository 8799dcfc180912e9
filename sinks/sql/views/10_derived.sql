-- Derived views: one row per KPI instance, per status segment, per call. Re-created by every migrate.

-- One row per KPI instance, open or ended: its latest end (kpi_durations) if it has one that is not revoked and
-- was not followed by a reopen, else its transitions (kpi_transitions; policy, queue, owner ... as of the latest
-- one; the queue and owner of an open one are the record's latest, from record_events); warned / breached /
-- escalation_level from the alerts. outcome is met, breached, cancelled or open;
-- breached is true for a breached end, a cancellation after the deadline, and an open instance whose BREACH
-- alert fired. reopened counts the reopens. Times an open instance does not have yet are NULL; its deadline is
-- the latest alert's, else the latest transition's that had one.
CREATE OR REPLACE VIEW {db}.kpi_instances AS
WITH
    ends AS
    (
        SELECT * FROM {db}.kpi_durations FINAL WHERE NOT revoked
    ),
    starts AS
    (
        SELECT
            instance_id,
            argMax(record_id, (at, transition_id)) AS record_id,
            argMax(entity_type, (at, transition_id)) AS entity_type,
            argMax(policy, (at, transition_id)) AS policy,
            argMax(policy_version, (at, transition_id)) AS policy_version,
            argMax(kpi, (at, transition_id)) AS kpi, argMax(kpi_instance, (at, transition_id)) AS kpi_instance,
            argMax(tier, (at, transition_id)) AS tier, argMax(priority, (at, transition_id)) AS priority,
            argMax(queue, (at, transition_id)) AS queue, argMax(owner, (at, transition_id)) AS owner,
            argMax(attributes['category'], (at, transition_id)) AS category,
            min(started_at) AS started_at,
            argMaxIf(deadline, (at, transition_id), deadline IS NOT NULL) AS deadline,
            argMax(target_ms, (at, transition_id)) AS target_ms,
            countIf(kind = 'KPI_REOPENED') AS reopens
        FROM {db}.kpi_transitions FINAL
        WHERE NOT revoked
        GROUP BY instance_id
        HAVING countIf(kind = 'KPI_STARTED') > 0
    ),
    -- An end counts unless the instance was reopened after it (an end's sequence is the reopens before it).
    closed AS
    (
        SELECT e.*
        FROM ends AS e
        LEFT JOIN starts AS s ON s.instance_id = e.instance_id
        WHERE e.sequence >= s.reopens
    ),
    -- Where each record is now: its latest queue and owner (an open KPI waits there, whatever its start said).
    now AS
    (
        SELECT
            record_id,
            argMaxIf(queue, (occurred_at, event_id), queue != '') AS queue,
            argMaxIf(owner, (occurred_at, event_id), owner != '') AS owner
        FROM {db}.record_events FINAL
        GROUP BY record_id
    ),
    alerted AS
    (
        SELECT
            instance_id,
            max(kind = 'WARNING') AS warned,
            max(kind = 'BREACH') AS breach_alerted,
            max(level) AS escalation_level,
            argMax(deadline, (fired_at, alert_id)) AS alert_deadline
        FROM {db}.sla_alerts FINAL
        WHERE NOT revoked
        GROUP BY instance_id
    ),
    instances AS
    (
        SELECT
            instance_id, record_id, entity_type, policy, policy_version, kpi, kpi_instance, tier, priority, queue,
            owner, category, started_at, deadline, toNullable(ended_at) AS ended_at, outcome, breached, target_ms,
            toNullable(business_ms) AS business_ms, toNullable(wall_ms) AS wall_ms,
            toNullable(paused_ms) AS paused_ms, sequence AS reopened
        FROM closed
        UNION ALL
        SELECT
            s.instance_id, s.record_id, s.entity_type, s.policy, s.policy_version, s.kpi, s.kpi_instance, s.tier,
            s.priority, if(n.queue != '', n.queue, s.queue), if(n.owner != '', n.owner, s.owner), s.category,
            s.started_at, s.deadline, NULL, 'open', false, s.target_ms, NULL, NULL, NULL, s.reopens
        FROM starts AS s
        LEFT JOIN now AS n ON n.record_id = s.record_id
        WHERE s.instance_id NOT IN (SELECT instance_id FROM closed)
    )
SELECT
    i.instance_id AS instance_id, i.record_id AS record_id, i.entity_type AS entity_type, i.policy AS policy,
    i.policy_version AS policy_version, i.kpi AS kpi, i.kpi_instance AS kpi_instance, i.tier AS tier,
    i.priority AS priority, i.queue AS queue, i.owner AS owner, i.category AS category,
    i.started_at AS started_at,
    if(i.outcome = 'open' AND a.instance_id != '', a.alert_deadline, i.deadline) AS deadline,
    i.ended_at AS ended_at, i.outcome AS outcome, i.target_ms AS target_ms, i.business_ms AS business_ms,
    i.wall_ms AS wall_ms, i.paused_ms AS paused_ms,
    toBool(i.breached OR (i.outcome = 'open' AND a.breach_alerted)) AS breached,
    toBool(a.warned) AS warned,
    a.escalation_level AS escalation_level,
    i.reopened AS reopened
FROM instances AS i
LEFT JOIN alerted AS a ON a.instance_id = i.instance_id;

-- Time spent per status, queue and owner: one row per record event, from that event to the record's next one
-- (ended_at and duration_ms NULL for the latest, still open). status, queue and owner are carried forward from
-- earlier events when an event does not repeat them. Events are ordered by event time, so a late event cuts
-- the segments where it belongs.
CREATE OR REPLACE VIEW {db}.status_segments AS
SELECT
    record_id, entity_type,
    ifNull(status, '') AS status, ifNull(queue, '') AS queue, ifNull(owner, '') AS owner,
    ifNull(tier, '') AS tier, ifNull(priority, '') AS priority, ifNull(category, '') AS category,
    kind AS entered_by, started_at, ended_at,
    dateDiff('millisecond', started_at, ended_at) AS duration_ms
FROM
(
    SELECT
        record_id, entity_type, kind, occurred_at AS started_at,
        last_value(nullIf(status, '')) OVER upto AS status,
        last_value(nullIf(queue, '')) OVER upto AS queue,
        last_value(nullIf(owner, '')) OVER upto AS owner,
        last_value(nullIf(tier, '')) OVER upto AS tier,
        last_value(nullIf(priority, '')) OVER upto AS priority,
        last_value(nullIf(category, '')) OVER upto AS category,
        leadInFrame(toNullable(occurred_at)) OVER next AS ended_at
    FROM {db}.record_events FINAL
    WINDOW
        upto AS (PARTITION BY entity_type, record_id ORDER BY occurred_at, event_id
                 ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
        next AS (PARTITION BY entity_type, record_id ORDER BY occurred_at, event_id
                 ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING)
);

-- One row per call: when it was offered, answered and ended, whether it was abandoned, wait and handle times
-- (the source's own figures when it gives them, else computed from the events), queue and agent (the last
-- ones, after transfers), the case it belongs to.
CREATE OR REPLACE VIEW {db}.telephony_calls AS
SELECT
    call_id,
    argMaxIf(queue, occurred_at, queue != '') AS queue,
    argMaxIf(agent, occurred_at, agent != '') AS agent,
    anyIf(direction, direction != '') AS direction,
    anyIf(case_id, case_id != '') AS case_id,
    anyIf(tier, tier != '') AS tier,
    minOrNullIf(occurred_at, kind IN ('offered', 'queued')) AS offered_at,
    minOrNullIf(occurred_at, kind = 'answered') AS answered_at,
    maxOrNullIf(occurred_at, kind IN ('ended', 'abandoned', 'answered', 'callback_completed')) AS last_at,
    toBool(answered_at IS NOT NULL) AS answered,
    toBool(max(kind = 'abandoned') AND answered_at IS NULL) AS abandoned,
    countIf(kind = 'transferred') AS transfers,
    coalesce(maxOrNull(wait_ms), dateDiff('millisecond', offered_at, coalesce(answered_at, last_at))) AS wait_ms,
    coalesce(maxOrNull(handle_ms), dateDiff('millisecond', answered_at, maxOrNullIf(occurred_at, kind = 'ended')))
        AS handle_ms
FROM {db}.call_events FINAL
GROUP BY call_id
