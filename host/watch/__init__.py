"""The parts of the watchdog's :class:`host.monitor.Monitor`, one module per
responsibility: probes, restarts, config drift, the log scan, the hand-over."""
