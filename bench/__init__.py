"""The benchmarks: scripts run as `python bench/NAME.py` (with bench/ on sys.path); a package
only so that the unit tier can import their pure parts (`bench.plot_failover`)."""
