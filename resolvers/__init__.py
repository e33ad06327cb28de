"""What each field does: business rules, visibility and domain errors, per domain (users, tasks, documents).

Plain async functions over a `Context`; they know the rules and the data, not GraphQL.
"""
