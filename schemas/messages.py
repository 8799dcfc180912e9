"""The values of the output topics, built from the SLA core's :class:`~streams.outputs.Output`.

One function per output schema, each the one place where an ``Output`` becomes that message's dict (encode it
with the codec named in its doc):

- :func:`alert_message`: a WARNING, BREACH or ESCALATION as ``SlaAlert`` (:data:`schemas.codec.SLA_ALERT`);
- :func:`transition_message`: every other output (KPI_STARTED ... KPI_CANCELLED) as ``KpiTransition``
  (:data:`schemas.codec.KPI_TRANSITION`);
- :func:`duration_message`: a KPI_SUCCEEDED or KPI_CANCELLED, which ends a KPI instance, also as
  ``KpiDuration`` (:data:`schemas.codec.KPI_DURATION`), the row analysts aggregate.

Times are UTC epoch milliseconds, durations milliseconds; docs/events.md describes every field.
"""

from __future__ import annotations

from typing import Any, Final

from streams.outputs import Output, OutputKind

MET_LATE: Final = "met_late"
"""The reason :class:`streams.core.SlaCore` gives a KPI_SUCCEEDED whose deadline had been crossed (else ``met``)."""


def _kpi_instance(output: Output) -> dict[str, Any]:
    """The fields every output message has: which KPI instance of which record, under which policy version."""
    return {
        "record_id": output.record_id,
        "entity_type": output.entity_type,
        "policy": output.policy,
        "policy_version": output.policy_version,
        "kpi": output.kpi,
        "kpi_instance": output.kpi_instance,
    }


def alert_message(output: Output, fired_at_ms: int) -> dict[str, Any]:
    """The ``SlaAlert`` of an alert output; ``fired_at_ms`` is the watermark when it was emitted.

    ``fired_at_ms`` is never before the threshold (an alert cannot fire before it is due), and ``deadline_ms``
    is the threshold's instant when the KPI has no deadline in force (paused).
    """
    return {
        "alert_id": output.output_id,
        "kind": output.kind.value,
        **_kpi_instance(output),
        "started_at_ms": output.started_at_ms,
        "threshold_at_ms": output.at_ms,
        "deadline_ms": output.at_ms if output.deadline_ms is None else output.deadline_ms,
        "fired_at_ms": max(fired_at_ms, output.at_ms),
        "target_ms": output.target_ms,
        "business_elapsed_ms": output.business_elapsed_ms,
        "wall_elapsed_ms": output.wall_elapsed_ms,
        "paused_ms": output.paused_ms,
        "attributes": dict(output.attributes),
        "level": output.level,
        "actions": [action.to_json() for action in output.actions],
        "revision": output.revision,
        "revoked": output.revoked,
    }


def transition_message(output: Output, emitted_at_ms: int) -> dict[str, Any]:
    """The ``KpiTransition`` of a non-alert output; ``emitted_at_ms`` is the watermark when it was emitted.

    ``emitted_at_ms`` is never before the output became visible (:attr:`Output.visible_ms`: the event that
    caused or revealed it). Raises ``ValueError`` for an alert, which is an ``SlaAlert``.
    """
    if output.is_alert:
        raise ValueError(f"{output.output_id} is an alert: use alert_message")
    return {
        "transition_id": output.output_id,
        "kind": output.kind.value,
        **_kpi_instance(output),
        "sequence": output.sequence,
        "at_ms": output.at_ms,
        "started_at_ms": output.started_at_ms,
        "deadline_ms": output.deadline_ms,
        "target_ms": output.target_ms,
        "business_elapsed_ms": output.business_elapsed_ms,
        "wall_elapsed_ms": output.wall_elapsed_ms,
        "paused_ms": output.paused_ms,
        "reason": output.reason,
        "actions": [action.to_json() for action in output.actions],
        "attributes": dict(output.attributes),
        "revision": output.revision,
        "revoked": output.revoked,
        "emitted_at_ms": max(emitted_at_ms, output.visible_ms),
    }


def duration_message(output: Output) -> dict[str, Any] | None:
    """The ``KpiDuration`` of an output that ends a KPI instance; ``None`` for any other output.

    KPI_SUCCEEDED ends it ``met``, or ``breached`` when the core says it was met late (its deadline had been
    crossed: the core's own verdict, which ``business_elapsed_ms > target_ms`` is not, since a KPI met after its
    deadline during closed hours has used exactly its target). KPI_CANCELLED ends it ``cancelled``; ``breached``
    then says whether its deadline had passed: ``deadline_ms < at_ms`` (thresholds are crossed strictly before
    an event), or, while paused (no deadline), ``business_elapsed_ms >= target_ms``.
    """
    if output.kind is OutputKind.KPI_SUCCEEDED:
        breached = output.reason == MET_LATE
        outcome = "breached" if breached else "met"
    elif output.kind is OutputKind.KPI_CANCELLED:
        outcome = "cancelled"
        if output.deadline_ms is None:
            breached = output.business_elapsed_ms >= output.target_ms
        else:
            breached = output.deadline_ms < output.at_ms
    else:
        return None
    return {
        "duration_id": f"{output.record_id}/{output.kpi}/{output.kpi_instance}",
        **_kpi_instance(output),
        "sequence": output.sequence,
        "outcome": outcome,
        "started_at_ms": output.started_at_ms,
        "ended_at_ms": output.at_ms,
        "deadline_ms": output.deadline_ms,
        "target_ms": output.target_ms,
        "business_ms": output.business_elapsed_ms,
        "wall_ms": output.wall_elapsed_ms,
        "paused_ms": output.paused_ms,
        "breached": breached,
        "attributes": dict(output.attributes),
        "revision": output.revision,
        "revoked": output.revoked,
    }
