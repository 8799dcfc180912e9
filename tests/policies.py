"""Policy texts shared by tests."""

VIP_FIRST_RESPONSE = """\
version: "t1"
lateness: {allowed: 0s, max: 1h}
calendars:
  always: {preset: "24/7", timezone: UTC}
policies:
  - name: vip
    applies_when: {entity_type: case, tier: VIP}
    calendar: always
    kpis:
      - name: first_response
        target: 1h
        warning: 30m
        start: {kind: created}
        stop: {kind: first_response}
        cancel: {kind: cancelled}
"""
"""A VIP case must get a first response within an hour (warning at 30 minutes), on a 24/7 UTC calendar."""
