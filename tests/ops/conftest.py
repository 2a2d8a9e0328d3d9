"""Fixtures for the operations tests: the fleet's simulated day in a real InfluxDB 1.x."""

from testkit.fleet_day import fleet_day

__all__ = ["fleet_day"]
