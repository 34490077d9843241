"""The StoreAgent Kubernetes operator (kopf)."""
