"""Rules: the Prometheus alerting rules, evaluated as Prometheus evaluates them, and the alerts
they raise (state, acknowledgements).

- model (pure): rules, samples, alerts, fingerprints, RuleEvaluationError
- templating, gofmt (pure): labels and annotations rendered as Prometheus renders them
- state (pure): the rule state machine (`for`, `keep_firing_for`, episodes)
- notify (pure): which notifications are due (repeat buckets, silences, acks, SLO grouping)
- messages (pure): the Message a group of alerts becomes
- files: the rule files; prometheus: instant queries through the HTTP API
- evaluator: one evaluation round
"""
