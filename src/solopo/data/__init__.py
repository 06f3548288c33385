"""Training data: MuSiQue reader, toy world, RULER-style context synthesis."""
