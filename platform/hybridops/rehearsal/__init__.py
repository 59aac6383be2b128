"""The cluster rehearsed on one machine: the chart's rendered workloads run as local processes.

No Kubernetes can run here, so the rendered manifests' own commands, environments and files are executed by
the real programs on loopback ports: :mod:`.kubelet` does the kubelet's part for one container,
:mod:`.topology` maps the release's Services and volumes onto this machine, :mod:`.workloads` starts each
component, and :mod:`.rehearse` drops the source month by month and measures what the automation did.
Nothing here imports Dagster at import time.
"""
