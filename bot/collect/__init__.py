"""Evidence collectors: read-only Kubernetes and Prometheus, each time-boxed."""
