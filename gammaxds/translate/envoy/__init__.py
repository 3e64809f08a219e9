"""Envoy resources rendered from the IR and the model: one module per Envoy concern (listeners, routes and
their filters, clusters, endpoints), the names they share, and the sidecar's own replies."""
