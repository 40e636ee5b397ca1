"""Simulated meters on real sockets: a meter model (load curves, registers, profiles, clock) and
a server that answers protocol requests with fault injection.  Used by ``meterpoll sim``, the
demo, the tests and the benchmarks."""
