"""The hybridops Dagster code location (assets, checks, sensors and schedules over hybridops logic)."""

from hybridops.processes import wait_passively

# Run workers and code servers import this package before any step imports LightGBM.
wait_passively()
