"""harness: a multiprocess raw-socket stress harness.

Latency travels as histograms in ns; throughput in msgs/s and MB/s.
"""

__version__ = "0.1.0"

from harness import accel as _accel  # noqa: E402  (the build that runs: compiled or pure)

_accel.install()
