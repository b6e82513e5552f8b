"""Values and process helpers every layer may import: the plan, units, limits, setting
specs, histograms, a worker's result, signals."""
