"""Pure billing domain: metering, periods, plans, quota. No I/O, no clock: time is a parameter."""
