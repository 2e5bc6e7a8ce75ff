"""The control plane: a gRPC service a paired peer uses while a session runs.

Place in the pipeline: beside the front ends. It reads what a session observes through the
session's recording (followed as it grows) and proposes drops to the local operator; it
never calls the kernel plane and never holds the risk or intervention override.
Modules: ``privdir`` (root-only files under /etc/gewyvern), ``keys`` (Ed25519 key files),
``pairing`` (tokens and paired peers), ``signing`` (signed requests and their check),
``follow`` (the recording as a live feed), ``streams`` (one client's bounded stream),
``proposals`` (drops waiting for the operator),
``service`` (the RPC handlers), ``server`` (the socket's lifetime), ``client`` (the reference
peer), ``otlp`` (verdicts and counters to an OpenTelemetry collector).
"""
