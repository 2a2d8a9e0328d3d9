"""`klupa sim`, in three parts: the fleet (`fleet`: the command, one process per bench, power
cuts), one bench's process (`bench`: the unchanged firmware on the virtual board, driven by the
physics of its place) and the passers-by who press its pads (`passersby`)."""
