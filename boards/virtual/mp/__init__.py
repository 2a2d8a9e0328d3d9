"""The virtual board's hardware, the one model of it: ``machine``, ``network``, ``esp32`` and
``ntptime`` over a :mod:`virtualboard` of :mod:`chips`, written in the MicroPython subset.

The MicroPython VM gets this folder as its ``/lib`` (``testkit/vm.py``, the REPL board);
CPython imports ``chips`` and ``virtualboard`` from here and loads the four hardware modules
afresh for each bench (:mod:`boards.virtual.hardware`).
"""
