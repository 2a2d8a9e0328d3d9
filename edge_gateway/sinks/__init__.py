"""Sinks: each forwards the store's rows past its own watermark, batched, with its own retries.

One sink down never stalls another or the ingest: each runs in its own thread on its own
store connection. Adding a sink is one new module with a :class:`~edge_gateway.sinks.base.Sink`.
"""
