# cython: language_level=3
"""IEC 62056-21 (mode C/D) native decoder: constants shared with the bindings.

BCC modes (``bcc=`` of the bindings): 0 = XOR (IEC 62056-21), 1 = arithmetic sum mod 128
(Energomera), 2 = not checked.
"""

cdef enum:
    IEC_BCC_XOR = 0
    IEC_BCC_SUM7 = 1
    IEC_BCC_NONE = 2
