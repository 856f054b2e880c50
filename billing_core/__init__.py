"""What the billing engine and the alerts process share: billing periods, plans and quota (pure
rules), the plans file, settings parsing, the error hierarchy and its HTTP shape, the SQL engine
and migrations runner, fail-soft Redis, JSON logs and the clock."""
