"""Metrics for Prometheus: counters of what happens in a process, gauges read from the store."""
