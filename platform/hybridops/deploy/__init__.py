"""Deployment of hybridops to Kubernetes: the Helm chart's values model, its schema and offline rendering."""
