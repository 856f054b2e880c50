"""The pure core of the alerts process: no database, HTTP or clock; time comes in as a parameter.

- model: rules, samples, alerts and their fingerprints
- templating, gofmt: labels and annotations rendered as Prometheus renders them
- state: the rule state machine (`for`, `keep_firing_for`, episodes)
- notify: repeat buckets, grouping, acknowledgements and SLO grouping
- budget: open billing periods and budget thresholds
"""
