"""The Feast Kubernetes-auth tests' release: the chart's role names and the ServiceAccounts its values bind.

Shared by the rendered-and-live test of the feature server (test_deploy_feast_k8s_auth) and the token
parser's test against the rendered RBAC (test_deploy_feast_token_review), so both exercise one release.
"""

from __future__ import annotations

from hybridops.rehearsal.kubelet import NAMESPACE

FEAST = "hybridops-feast"
READER_ROLE, WRITER_ROLE = "hybridops-feast-reader", "hybridops-feast-writer"
# Other teams' applications, bound by the values (one in another namespace, as the docs describe).
READER_SA, WRITER_SA, STRANGER_SA = ("team-a", "recommender"), (NAMESPACE, "backfill"), (NAMESPACE, "nobody")
OVERRIDES = {
    "feast": {
        "auth": {
            "readers": [{"name": READER_SA[1], "namespace": READER_SA[0]}],
            "writers": [{"name": WRITER_SA[1]}],
        }
    }
}
