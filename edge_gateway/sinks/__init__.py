"""Sinks: each forwards the store's rows past its own watermark, batched, with its own retries.

One sink down never stalls another or the ingest: the sinks run in the forwarder process
(:mod:`edge_gateway.forwarder`), each in its own thread on its own store connection. Adding a
sink is one new module with a :class:`~edge_gateway.sinks.base.Sink`, built in the forwarder.
"""
