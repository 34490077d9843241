"""StoreAgent: AI phone answering for small shops (agent + Kubernetes operator)."""

__version__ = "0.1.0"
