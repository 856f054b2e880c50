"""On call: the policy file, rotations, escalation of unacknowledged alerts, who is on call."""
