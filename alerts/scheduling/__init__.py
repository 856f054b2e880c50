"""Who works and when: the leader election (one replica evaluates and sends) and the scheduler
that runs the rounds, the outbox and housekeeping."""
