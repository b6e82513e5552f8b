"""What a run writes, shows and sends: run.json, the table, HTML, exports (.hlog,
OpenMetrics, JUnit), the Pushgateway, alerts. Never recomputes a statistic."""
