-- Analyst views: ready answers to the questions of the product brief ("What analysts want from the data",
-- "Telephony"). Re-created by every migrate, after 10_derived.sql, on which they build.
--
-- Every view reads the derived views (kpi_instances, status_segments, telephony_calls) or a table with FINAL,
-- so a replayed topic or a retried insert never counts anything twice.
-- Units: weeks are Date, the Monday of a UTC week (toMonday); hours are DateTime('UTC'), the start of a UTC hour;
-- a column ending in _h is in hours, _s in seconds (Float64); rates and service levels are shares in [0, 1],
-- NULL when their denominator is 0. Durations are wall-clock time (business time is kpi_instances.business_ms).
-- Medians and p90 are exact and interpolated, as a spreadsheet's PERCENTILE.INC (quantileExactInclusive).

-- 1. Breach rate and time to breach: where do breaches cluster, and how far past the deadline do they go?
-- One row per week, tier, queue, policy and KPI. A KPI instance counts in the week its clock started
-- (started_at), whatever week it ended in or is still open. breached counts ended breaches, cancellations after
-- the deadline and open instances whose BREACH alert fired; breach_rate = breached / (met + breached): the KPIs
-- whose fate is known (open ones that have not breached yet, and cancellations in time, are left out of it).
CREATE OR REPLACE VIEW {db}.breach_rate AS
SELECT
    week, tier, queue, policy, kpi,
    count() AS kpis,
    countIf(outcome != 'open') AS ended,
    countIf(outcome = 'met') AS met,
    countIf(is_breached) AS breached,
    countIf(outcome = 'cancelled') AS cancelled,
    countIf(outcome = 'open') AS open,
    breached / nullIf(met + breached, 0) AS breach_rate,
    -- time to breach: wall hours from the clock start to the deadline, of the breached ones
    quantileExactInclusiveIf(0.5)(h_to_deadline, is_breached) AS median_h_to_deadline,
    -- how late: wall hours from the deadline to the end, of the breached ones that ended
    quantileExactInclusiveIf(0.5)(h_past_deadline, is_breached) AS median_h_past_deadline,
    quantileExactInclusiveIf(0.9)(h_past_deadline, is_breached) AS p90_h_past_deadline
FROM
(
    SELECT
        toMonday(started_at) AS week, tier, queue, policy, kpi, outcome, breached AS is_breached,
        dateDiff('millisecond', started_at, deadline) / 3600000 AS h_to_deadline,
        dateDiff('millisecond', deadline, ended_at) / 3600000 AS h_past_deadline
    FROM {db}.kpi_instances
)
GROUP BY week, tier, queue, policy, kpi;

-- 2. Where do records wait? time_spent: one row per week, entity type, dimension ('status' or 'queue') and
-- value: the stays (consecutive status segments of one record with the same value make one stay, however many
-- events happened in between), their number, the records, and total / mean / p90 wall hours per stay. Closed
-- stays only: a stay counts once the record has left the status (queue), in the week the stay began; the stay
-- a record is in now is left out. time_in_status and time_in_queue are its two halves.
CREATE OR REPLACE VIEW {db}.time_spent AS
WITH
    segments AS  -- each status segment twice: once for its status, once for its queue
    (
        SELECT entity_type, record_id, dimension, value, entered_by, started_at, ended_at, duration_ms
        FROM {db}.status_segments
        ARRAY JOIN ['status', 'queue'] AS dimension, [status, queue] AS value
    ),
    marked AS  -- each segment in time order (segments of the same instant by end, value, kind): does a stay begin?
    (
        SELECT
            entity_type, record_id, dimension, value, entered_by, started_at, ended_at, duration_ms,
            row_number() OVER w = 1 OR value != lagInFrame(value) OVER w AS enters
        FROM segments
        WINDOW w AS (PARTITION BY entity_type, record_id, dimension ORDER BY started_at, ended_at, value, entered_by
                     ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
    ),
    numbered AS  -- the stay number of each segment, in the same order
    (
        SELECT
            entity_type, record_id, dimension, value, started_at, ended_at, duration_ms,
            sum(enters) OVER (PARTITION BY entity_type, record_id, dimension
                              ORDER BY started_at, ended_at, value, entered_by
                              ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS stay
        FROM marked
    ),
    stays AS  -- one row per stay; closed ones only
    (
        SELECT
            entity_type, record_id, dimension, any(value) AS value, min(started_at) AS started_at,
            sum(ifNull(duration_ms, 0)) AS ms
        FROM numbered
        GROUP BY entity_type, record_id, dimension, stay
        HAVING countIf(ended_at IS NULL) = 0
    )
SELECT
    toMonday(started_at) AS week, entity_type, dimension, value,
    count() AS stays,
    uniqExact(record_id) AS records,
    sum(ms) / 3600000 AS total_h,
    avg(ms) / 3600000 AS mean_h,
    quantileExactInclusive(0.9)(ms) / 3600000 AS p90_h
FROM stays
GROUP BY week, entity_type, dimension, value;

-- 2a. Where do records wait, per status? time_spent's statuses.
CREATE OR REPLACE VIEW {db}.time_in_status AS
SELECT week, entity_type, value AS status, stays, records, total_h, mean_h, p90_h
FROM {db}.time_spent
WHERE dimension = 'status';

-- 2b. Where do records wait, per queue? time_spent's queues: from the event that put the record into the queue
-- to the event that moved it to another one.
CREATE OR REPLACE VIEW {db}.time_in_queue AS
SELECT week, entity_type, value AS queue, stays, records, total_h, mean_h, p90_h
FROM {db}.time_spent
WHERE dimension = 'queue';

-- 3a. Reopens and e-mails of each record under SLA (every record with at least one KPI instance), and whether
-- any of its KPIs breached. tier and queue: those of its KPI instance that ended (or else started) last;
-- first_kpi_at: when its first KPI started. reopens = the larger of its 'reopened' record events and the
-- distinct instants at which one of its KPIs was reopened (KPI_REOPENED, or KPI_STARTED with reason
-- 'reopened'). E-mails are its email activities; email_turns counts the e-mails, in time order, whose direction
-- differs from the previous one's (in, out, in, out: 3 turns; in, in, out: 1).
CREATE OR REPLACE VIEW {db}.record_reopens_emails AS
WITH
    kpis AS
    (
        SELECT
            entity_type, record_id,
            argMax(tier, (coalesce(ended_at, started_at), instance_id)) AS tier,
            argMax(queue, (coalesce(ended_at, started_at), instance_id)) AS queue,
            min(started_at) AS first_kpi_at,
            count() AS kpis, countIf(breached) AS breached_kpis
        FROM {db}.kpi_instances
        GROUP BY entity_type, record_id
    ),
    reopen_events AS
    (
        SELECT entity_type, record_id, count() AS reopen_events
        FROM {db}.record_events FINAL
        WHERE kind = 'reopened'
        GROUP BY entity_type, record_id
    ),
    kpi_reopens AS
    (
        SELECT entity_type, record_id, uniqExact(at) AS kpi_reopens
        FROM {db}.kpi_transitions FINAL
        WHERE NOT revoked AND (kind = 'KPI_REOPENED' OR (kind = 'KPI_STARTED' AND reason = 'reopened'))
        GROUP BY entity_type, record_id
    ),
    emails AS
    (
        SELECT
            regarding_type AS entity_type, regarding_id AS record_id,
            count() AS emails,
            countIf(direction = 'inbound') AS inbound_emails,
            countIf(direction = 'outbound') AS outbound_emails,
            arrayMap(e -> e.3, arraySort(groupArray((occurred_at, event_id, direction)))) AS directions,
            arrayCount((d, previous) -> d != previous, arrayPopFront(directions), arrayPopBack(directions))
                AS email_turns
        FROM {db}.activities FINAL
        WHERE activity_type = 'email' AND direction IN ('inbound', 'outbound')
        GROUP BY regarding_type, regarding_id
    )
SELECT
    k.entity_type AS entity_type, k.record_id AS record_id, k.tier AS tier, k.queue AS queue,
    k.first_kpi_at AS first_kpi_at, k.kpis AS kpis, k.breached_kpis AS breached_kpis,
    toBool(k.breached_kpis > 0) AS breached,
    greatest(ifNull(r.reopen_events, 0), ifNull(o.kpi_reopens, 0)) AS reopens,
    ifNull(r.reopen_events, 0) AS reopen_events, ifNull(o.kpi_reopens, 0) AS kpi_reopens,
    ifNull(e.emails, 0) AS emails, ifNull(e.inbound_emails, 0) AS inbound_emails,
    ifNull(e.outbound_emails, 0) AS outbound_emails, ifNull(e.email_turns, 0) AS email_turns
FROM kpis AS k
LEFT JOIN reopen_events AS r ON r.entity_type = k.entity_type AND r.record_id = k.record_id
LEFT JOIN kpi_reopens AS o ON o.entity_type = k.entity_type AND o.record_id = k.record_id
LEFT JOIN emails AS e ON e.entity_type = k.entity_type AND e.record_id = k.record_id;

-- 3b. Do reopens and e-mail back-and-forth go with breaches? record_reopens_emails in buckets: one row per
-- entity type, reopens bucket ('0', '1', '2+') and e-mail turns bucket ('0', '1', '2', '3-4', '5+'): the
-- records, those with a breached KPI, their share (breach_rate), and their mean e-mails and turns.
CREATE OR REPLACE VIEW {db}.reopen_email_breach AS
SELECT
    entity_type,
    multiIf(reopens = 0, '0', reopens = 1, '1', '2+') AS reopens_bucket,
    multiIf(email_turns = 0, '0', email_turns = 1, '1', email_turns = 2, '2', email_turns <= 4, '3-4', '5+')
        AS email_turns_bucket,
    count() AS records,
    countIf(breached) AS breached_records,
    breached_records / records AS breach_rate,
    avg(emails) AS avg_emails,
    avg(email_turns) AS avg_email_turns
FROM {db}.record_reopens_emails
GROUP BY entity_type, reopens_bucket, email_turns_bucket;

-- 4. Agent productivity: one row per agent and week. cases_handled: the cases that had an event while the
-- agent owned them (the owner as of each event, carried forward: status_segments); cases_resolved: the cases
-- with a 'resolved' event while the agent owned them; calls_answered and avg_handle_s: the calls the agent
-- answered (telephony_calls.agent, in the week of the answer); emails_sent: outbound e-mail activities of the
-- agent; time_logged_h: the durations of the agent's time_log activities. Agents are owner values as the CRM
-- sends them (also 'unassigned' or a supervisor).
CREATE OR REPLACE VIEW {db}.agent_productivity AS
SELECT
    week, agent,
    sum(cases_handled) AS cases_handled,
    sum(cases_resolved) AS cases_resolved,
    sum(calls_answered) AS calls_answered,
    sum(handle_ms) / nullIf(sum(handled_calls), 0) / 1000 AS avg_handle_s,
    sum(emails_sent) AS emails_sent,
    ifNull(sum(logged_ms), 0) / 3600000 AS time_logged_h
FROM
(
    SELECT
        toMonday(started_at) AS week, owner AS agent,
        uniqExact(record_id) AS cases_handled,
        uniqExactIf(record_id, entered_by = 'resolved') AS cases_resolved,
        toUInt64(0) AS calls_answered, toUInt64(0) AS handled_calls, toNullable(toInt64(0)) AS handle_ms,
        toUInt64(0) AS emails_sent, toNullable(toInt64(0)) AS logged_ms
    FROM {db}.status_segments
    WHERE entity_type = 'case' AND owner != ''
    GROUP BY week, agent
    UNION ALL
    SELECT
        toMonday(assumeNotNull(answered_at)) AS week, agent,
        0, 0, count(), count(handle_ms), sum(handle_ms), 0, NULL
    FROM {db}.telephony_calls
    WHERE answered AND agent != ''
    GROUP BY week, agent
    UNION ALL
    SELECT
        toMonday(occurred_at) AS week, owner AS agent,
        0, 0, 0, 0, NULL,
        countIf(activity_type = 'email' AND direction = 'outbound'), sumIf(duration_ms, activity_type = 'time_log')
    FROM {db}.activities FINAL
    WHERE owner != '' AND (activity_type = 'time_log' OR (activity_type = 'email' AND direction = 'outbound'))
    GROUP BY week, agent
)
GROUP BY week, agent;

-- 5a. Service level of the KPIs: share met, per week, policy, KPI and tier. A KPI instance counts in the week it
-- ended (ended_at), once it ended met or breached (met late); cancelled and open instances are left out.
-- service_level = met / (met + breached).
CREATE OR REPLACE VIEW {db}.service_level AS
SELECT
    week, policy, kpi, tier,
    countIf(outcome = 'met') AS met,
    countIf(outcome = 'breached') AS breached,
    met / (met + breached) AS service_level
FROM
(
    SELECT toMonday(assumeNotNull(ended_at)) AS week, policy, kpi, tier, outcome
    FROM {db}.kpi_instances
    WHERE outcome IN ('met', 'breached')
)
GROUP BY week, policy, kpi, tier;

-- 5b. Service level of the telephony queues, per queue and hour (tumbling windows of one UTC hour, by the
-- instant the call was offered; calls that were never offered to a queue, such as outbound calls, are left
-- out). offered: calls; answered / abandoned: calls answered, calls abandoned and not answered;
-- answered_within_20s: answered after a wait of at most 20 s (20,000 ms included); service_level =
-- answered_within_20s / offered; avg_speed_of_answer_s: mean wait of the answered calls; abandonment_rate =
-- abandoned / offered; avg_handle_s: mean handle time of the answered calls that have one. The counts add up
-- over hours and queues, so sliding windows are sums over rows of this view (see the README).
CREATE OR REPLACE VIEW {db}.call_service_level AS
SELECT
    hour, queue,
    count() AS offered,
    countIf(is_answered) AS answered,
    countIf(is_answered AND wait <= 20000) AS answered_within_20s,
    countIf(is_abandoned) AS abandoned,
    answered_within_20s / offered AS service_level,
    avgIf(wait, is_answered) / 1000 AS avg_speed_of_answer_s,
    abandoned / offered AS abandonment_rate,
    avgIf(handle, is_answered) / 1000 AS avg_handle_s
FROM
(
    SELECT
        toStartOfHour(toDateTime(assumeNotNull(offered_at), 'UTC')) AS hour, queue,
        answered AS is_answered, abandoned AS is_abandoned, wait_ms AS wait, handle_ms AS handle
    FROM {db}.telephony_calls
    WHERE offered_at IS NOT NULL
)
GROUP BY hour, queue;
