"""Sidecar injection: `gammaxds inject` and the mutating admission webhook, around one shared rewriter.

- `rewrite`: the pure rewriter (inject, uninject) on plain dicts;
- `manifests`: YAML streams through it, for the CLI;
- `patch`: the JSON Patch between a pod and its rewrite, for the webhook;
- `webhook`: the AdmissionReview v1 handler and its HTTPS server;
- `certs`: the webhook's serving certificate (from files, or a CA and certificate generated at start);
- `cabundle`: a generated CA put into the MutatingWebhookConfiguration's caBundle;
- `options`: the injection flags both commands share.

This module imports nothing, so `gammaxds.cli` can import `options` cheaply.
"""
