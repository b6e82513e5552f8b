"""The charts of ``harness history --html``: p99 and throughput of each plan's runs over
time (UTC), one chart per plan."""

from __future__ import annotations

from typing import Any

from harness.report.figures import RC, Chart, new_figure, num, to_svg


def history_charts(groups: dict[str, list[Any]]) -> list[Chart]:
    """One chart per plan of ``harness history``: p99 and throughput of each run's key
    step (rows with ``started_unix_s``, ``date``, ``p99_ms``, ``throughput_msgs_s``) over
    time; a plan run once gets a sentence (one point is no trend)."""
    import matplotlib

    out = []
    with matplotlib.rc_context(RC):
        for k, (name, rows) in enumerate(groups.items()):
            caption = f"{name}: p99 and throughput of the key step (knee, else top step)"
            if len(rows) < 2:
                r = rows[0]
                p99 = "-" if r.p99_ms is None else f"{r.p99_ms:.3f} ms"
                tput = "-" if r.throughput_msgs_s is None else f"{r.throughput_msgs_s:,.1f}"
                out.append(Chart(f"history-{k}", caption, None,
                                 f"One run ({r.date}): p99 {p99}, {tput} msgs/s. A trend needs "
                                 "two runs of this plan or more."))
                continue
            out.append(Chart(f"history-{k}", caption + " over time",
                             to_svg(history_figure(rows), f"history{k}")))
    return out


HISTORY_PAD_S = 60.0  # at least this much room (s) each side of the runs on the time axis


def history_figure(rows: list[Any]) -> Any:
    """p99 and throughput against run start (UTC); the axis spans the runs, plus 5% (at
    least a minute) each side, with dates as short as their spread allows."""
    import datetime as dt

    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    fig, (lat, thr) = new_figure(1, 2, height=3.0)
    when = [dt.datetime.fromtimestamp(r.started_unix_s, dt.UTC) for r in rows]
    lat.plot(when, [num(r.p99_ms) for r in rows], "s-", color="C1", label="p99")
    lat.set(ylabel="p99 latency (ms)", title="p99")
    thr.plot(when, [num(r.throughput_msgs_s) for r in rows], "o-", color="C2",
             label="msgs/s")
    thr.set(ylabel="throughput (msgs/s)", title="throughput")
    t = [r.started_unix_s for r in rows]
    pad = max(0.05 * (max(t) - min(t)), HISTORY_PAD_S)
    lo = dt.datetime.fromtimestamp(min(t) - pad, dt.UTC)
    hi = dt.datetime.fromtimestamp(max(t) + pad, dt.UTC)
    for ax in (lat, thr):
        ax.set_ylim(bottom=0)
        ax.set_xlim(lo, hi)
        locator = AutoDateLocator(tz=dt.UTC)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator, tz=dt.UTC))
        ax.set_xlabel("run start (UTC)")
    return fig
