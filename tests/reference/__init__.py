"""Pure-Python reference codecs: slow and obvious, the oracle for differential tests. Never shipped."""
