"""The pure budget rules (moving to alerts/budget/)."""
