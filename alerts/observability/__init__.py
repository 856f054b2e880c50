"""What watches the process reads: every metric it exports, and its probes."""
