"""Real-time call admission: the call attempt, the tenant snapshot, the rules and the decision.

Everything here is pure: the admission service feeds it an attempt and an in-memory snapshot of
the tenant, and adds the counter checks (rates, repeat calls, concurrency) that need shared state.
"""
