"""The do-not-call list: add, remove, list, import, and opt-out replies recognised in SMS text.

The ``dnc`` table itself is core (``ivr.store``): the planner leaves listed numbers out and the
dialer checks it again right before every dial, so a number added here is never dialed again,
even when it was already planned.
"""
