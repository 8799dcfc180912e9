"""The pure SLA core of slaflow.

Nothing in this package performs I/O or reads the wall clock, and nothing in it
imports Faust, aiokafka, ClickHouse or Prometheus: time arrives as data
(event timestamps and clock ticks, in UTC epoch milliseconds), so that the
Faust agents, the replay CLI and the benchmarks run exactly the same logic.
"""
