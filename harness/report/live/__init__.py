"""The live page of ``harness run --live``: :mod:`harness.report.live.feed` builds each second's
merged record once (pure, no sockets), :mod:`harness.report.live.server` serves the page and the
records over Server-Sent Events, and ``page.js`` draws them (also inside report.html)."""
