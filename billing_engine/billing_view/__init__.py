"""The billing card: one customer's usage, plan, charges, subscription and invoice preview."""
