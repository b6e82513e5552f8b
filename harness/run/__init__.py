"""Running steps: workers forked, sweeps and probes, scale-out agents, a run's targets
started and stopped, the machine watched."""
