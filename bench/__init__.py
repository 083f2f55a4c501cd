"""Benchmarks for gemini-live against its peers, all in one run on one machine.

``python -m bench`` runs every workload (see ``docs/performance.md``):

* ``w1``: one session, client CPU per chunk in three regimes: pipelined (chunks back to
  back), ping-pong (one chunk in flight) and paced (one chunk every 20 ms).
* ``w2``: N concurrent paced sessions in one process; CPU and delivery latency.
* ``scale``: W2 with the sessions split over several client processes (one loop each).
* ``w3``: fixed costs: import time, connect+setup, resume after goAway, idle memory.
* ``micro``: codec micro-benchmarks (encode / decode one message).

Every client run is a fresh subprocess (``bench.client``) talking to a benchmark server
in another subprocess (``bench.server``) over 127.0.0.1. The server sends its frames as
the Live API does (2-space indented JSON, trailing newline; ``--framing compact`` for
compact JSON).
"""
