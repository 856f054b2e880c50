"""Budget alerts: an org's usage against its plan's included hours, at 50, 90 and 100 %, once
per threshold per billing period.

- rules (pure): open periods, threshold minutes, a crossing
- messages (pure): the customer email's and the support Slack line's Message
- evaluator: one budget round over every org
"""
