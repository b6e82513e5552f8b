"""Pure functions over results: percentiles, verdicts, capacity, comparisons, trends. Never
touches a socket."""
