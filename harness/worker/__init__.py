"""One worker process: the shell that wires a step, pacing, recording and delivery
accounting."""
