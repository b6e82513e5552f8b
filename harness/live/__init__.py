"""The live page of ``harness run --live``: :mod:`harness.live.feed` builds each second's
merged record once (pure, no sockets), :mod:`harness.live.server` serves the page and the
records over Server-Sent Events, and ``page.js`` draws them (also inside report.html)."""
