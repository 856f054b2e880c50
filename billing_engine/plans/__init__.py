"""Plans over HTTP: the catalogue in force. The rules and the plans file are billing_core's."""
