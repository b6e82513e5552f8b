"""The bytes and the sockets: framing, stamps, batches of frames, payloads, request tables,
the poller, the timer and the transport."""
