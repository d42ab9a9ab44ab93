"""Upstream wire protocols: one package per protocol, never per vendor.

Each package holds pure translation functions (canonical ⇄ vendor wire) and a thin adapter
that moves bytes through the shared :class:`~polyroute.adapters.client.UpstreamClient`.
"""
