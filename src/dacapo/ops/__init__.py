"""Pure array functions (numpy in, numpy out; no I/O, no torch)."""
