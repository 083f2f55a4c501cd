"""Benchmarks for gemini-live against its peers, all in one run on one machine.

``python -m bench`` runs every workload (see ``docs/performance.md``):

* ``w1``: one session, 3,000 audio chunks back to back; client CPU per chunk.
* ``w2``: N concurrent real-time sessions in one process; CPU and delivery latency.
* ``w3``: fixed costs: import time, connect+setup, resume after goAway, idle memory.
* ``micro``: codec micro-benchmarks (encode / decode one message).

Every client run is a fresh subprocess (``bench.client``) talking to a benchmark server
in another subprocess (``bench.server``) over 127.0.0.1.
"""
