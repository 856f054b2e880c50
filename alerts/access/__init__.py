"""Access to the alerts API: its policy table, who a credential names (the engine's staff keys
and the configured admin keys, through the engine's published lookup), and the audit log."""
