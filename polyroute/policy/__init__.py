"""Who may do what, and how much: authentication, limits, budgets, pricing.

The engine sees only the :class:`~polyroute.policy.types.Policy` protocol: it admits a request
after routing (when the candidates and their prices are known) and settles it when it ends.
Decisions are values or errors from :mod:`polyroute.errors`; nothing here does HTTP.
"""
