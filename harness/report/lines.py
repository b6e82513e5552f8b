"""The lines the command line prints while a step runs (its progress), for a search (each
probe, the load found) and for a calibration (the ceiling in msgs/s and MB/s, the latency
floor in ms). Text only: the CLI prints them."""

from __future__ import annotations

from typing import Any


def progress(step: Any, progress: list[dict], rate: float) -> str:
    """The live line: step, connections open, replies/s (``rate``), the p99 so far in this
    step (of the worst worker, ns in, ms out; "n/a" until a reply came), errors."""
    p99s = [p["p99"] for p in progress if p["p99"] is not None]
    p99 = f"{max(p99s) / 1e6:.3f} ms" if p99s else "n/a"
    what = f" messages={step.messages}" if step.messages is not None else ""
    return (f"step {step.index + 1} conns={step.conns}{what} open="
            f"{sum(p['open'] for p in progress)} msgs/s={rate:,.0f} "
            f"p99 so far (worst worker)={p99} "
            f"errors={sum(p['errors'] for p in progress)}   ")


def load_text(x: float | None) -> str:
    """A load as a person reads it: whole numbers as they are, others to 3 significant
    digits; thousands separated."""
    if x is None:
        return "-"
    if float(x).is_integer():
        return f"{x:,.0f}"
    short = float(f"{x:.3g}")
    return f"{short:,.0f}" if abs(short) >= 100 else f"{short:g}"


def search(result: dict, lo: float, slo_text: str, tolerance: float, unit: str) -> list[str]:
    """A search's lines: each probe, then the load found (or that none was)."""
    out = []
    for p in result["probes"]:
        p99 = "-" if p["p99_ms"] is None else f"{p['p99_ms']:.3f}"
        mark = "ok  " if p["ok"] else "FAIL" if p.get("judged", True) else "SKIP"
        why = p["violations"] if p.get("judged", True) else [f"not judged: {p['detail']}"]
        out.append(f"probe {load_text(p['load']):>9} {unit}: {mark} "
                   f"p99 {p99} ms, {p['throughput_msgs_s']:,.0f} msgs/s  {'; '.join(why)}")
    if result["searched_down"]:
        out.append(f"the first probe ({load_text(lo)} {unit}) failed: searched down, halving "
                   f"the load, to at most the floor of {load_text(result['floor'])} {unit}")
    if result.get("client_limit") is not None:
        out.append(f"the client could not drive {load_text(result['client_limit'])} {unit} "
                   "(client-bound): the server may take more than the search could probe")
    if result.get("inconclusive"):
        out.append(f"inconclusive: {result['inconclusive']}; no capacity is claimed")
    elif result["max_load"] is None:
        low = result["bracket"][1]
        out.append(f"no load from {load_text(low)} to {load_text(lo)} {unit} meets {slo_text}")
    else:
        out.append(f"max load meeting {slo_text}: {load_text(result['max_load'])} {unit} "
                   f"(tolerance {tolerance:.0%}"
                   f"{', not converged' if not result['converged'] else ''})")
    return out


def calibration(fig: dict) -> list[str]:
    """What ``harness calibrate`` found: the ceiling, the CPU that set it, the latency floor."""
    st = fig["setup"]
    out = []
    out.append(f"ceiling: {fig['ceiling_msgs_s']:,.0f} echoed msgs/s from one worker core "
               f"({fig['ceiling_mb_s']:.1f} MB/s; {st['conns']} conns x {st['inflight']} in "
               f"flight, {st['size']} B {st['framing']}; latency recorded for every message)")
    out.append(f"  client CPU {fig['client_cpu_pct']:.0f}%, echo server CPU "
               f"{fig['server_cpu_pct']:.0f}%" + ("  (the SERVER set this ceiling)"
                                                   if fig["server_bound"] else ""))
    out.append(f"latency floor: p50 {fig['floor_p50_ms']:.3f} ms, p99 {fig['floor_p99_ms']:.3f} "
               f"ms at {fig['floor_rate_msgs_s']:,.0f} msgs/s ({st['floor_conns']} conns x "
               f"{st['floor_rate_per_conn']:.0f}/s, open loop)")
    return out
