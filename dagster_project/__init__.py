"""The hybridops Dagster code location (assets, checks, sensors and schedules over hybridops logic)."""
