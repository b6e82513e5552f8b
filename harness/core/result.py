"""What a worker hands back for one step: plain numpy arrays, histograms and ints.

Times are ns of ``time.monotonic_ns()``; CPU in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from harness.core.histogram import Histogram
from harness.core.ledger import FanoutPart

UNPARSED_KEEP = 64  # bytes of the first unparsable reply kept for the diagnosis
ERROR_KINDS = ("connect_refused", "connect_timeout", "reset", "closed", "timeout", "protocol",
               "connect_no_port", "connect_fd_limit", "connect_reset", "connect_unreachable",
               "connect_other")


def zero_errors() -> dict[str, int]:
    return dict.fromkeys(ERROR_KINDS, 0)


@dataclass(frozen=True, slots=True)
class Share:
    """One worker's part of a step (built by the coordinator)."""

    worker: int
    gids: np.ndarray  # global connection id per local connection
    node: np.ndarray  # target index per local connection
    sends: np.ndarray  # bool per local connection: it sends (else it only listens)
    budget: np.ndarray | None  # messages per local connection (``--messages`` steps)
    rate: float  # open loop msgs/s per connection, 0 for closed loop
    expect_deliveries: int | None  # broadcast + messages: deliveries this worker awaits
    key: int  # stamp check key for this step
    # Stages: (start s after the measure window opens, active local connections, rate).
    # The first ``active`` local connections are the active ones; () means no stages.
    stages: tuple[tuple[float, int, float], ...] = ()
    classes: np.ndarray | None = None  # user class per local connection ([[users]] runs)


@dataclass(frozen=True, slots=True)
class Times:
    """Phase boundaries, absolute monotonic ns, the same for every worker."""

    begin: int  # warm-up starts: sending starts
    measure: int  # measure window starts
    end: int | None  # measure window ends (None: the message budget ends it)
    # --cluster: (first worker index of a machine, ns to add to its stamps' times to read
    # them in this machine's monotonic clock), by first worker; () when one clock
    shifts: tuple[tuple[int, int], ...] = ()


@dataclass(slots=True)
class WorkerResult:
    worker: int
    partial: bool = False
    conns: int = 0  # connections asked for
    connected: int = 0
    node_connected: np.ndarray | None = None  # connected per target node
    sent: int = 0  # messages sent inside the measure window
    received: int = 0  # replies / deliveries received inside the measure window
    sent_all: int = 0  # messages sent at any time of the step (warm-up and drain included)
    replies: int = 0  # valid (stamp-checked) replies received at any time of the step
    unparsed: bytes = b""  # the first bytes (<= UNPARSED_KEEP) received that did not parse
    bytes_sent: int = 0
    bytes_received: int = 0
    lost: int = 0
    duplicates: int = 0
    late: int = 0  # window messages answered, but later than --timeout
    errors: dict[str, int] = field(default_factory=zero_errors)
    latency: Histogram = field(default_factory=Histogram)
    service: Histogram = field(default_factory=Histogram)  # open loop: from the actual send
    connect: Histogram = field(default_factory=Histogram)
    handshake: Histogram = field(default_factory=Histogram)  # TLS: TCP connected -> handshake done
    tls_reasons: dict[str, str] = field(default_factory=dict)  # first reason per tls_* kind
    failed_bodies: dict[str, bytes] = field(default_factory=dict)  # HTTP [[users]]: the first
    # failing response (status line, body cut) per check_/capture_ kind
    status: dict[int, int] = field(default_factory=dict)  # HTTP: responses per status code
    reconnects: int = 0  # connections reopened after the server closed them (HTTP between
    # requests, or with Connection: close; ws --reconnect): not errors
    conns_lost: int = 0  # connections up once that went down by a fault and were not back
    # by the end of the step (closed, reset, a broken stream, a failed reopen)
    reconnect: Histogram = field(default_factory=Histogram)  # ws --reconnect: downtime, ns
    # ws --reconnect: per episode (lost, back, first message again), s after the window
    # opened (Times.measure); NaN: did not happen
    episodes: np.ndarray | None = None
    ramp: np.ndarray | None = None  # the connect ramp: (began, completed) ns per connect made
    # a protocol's own counts by group (ws --ws-compress: "ws_compress", raw and wire bytes),
    # summed over the workers into the step's field of that name; its Spec.extras names them
    tallies: dict[str, dict[str, int]] = field(default_factory=dict)
    # a protocol's own latencies by name (sio: "sio_ack", send to ack), ns: in the step as
    # NAME_ms (percentiles) and NAMEs (how many); its Spec.extras names them
    extra: dict[str, Histogram] = field(default_factory=dict)
    kinds: list[Histogram] = field(default_factory=list)  # latency per message kind
    kind_sent: list[int] = field(default_factory=list)
    series: dict[str, np.ndarray] = field(default_factory=dict)  # per second of the window
    sec_hists: list[Histogram] = field(default_factory=list)
    window_start: int = 0
    window_end: int = 0  # ns: end of the measure window (last send in --messages mode)
    first_send: int = 0
    last_send: int = 0
    last_recv: int = 0
    behind: int = 0  # open loop: messages sent over 5 ms behind their schedule
    cpu_s: float = 0.0
    wall_s: float = 0.0
    wait_s: float = 0.0  # runnable but waiting for its core (run queue), from schedstat
    fanout: FanoutPart | None = None
