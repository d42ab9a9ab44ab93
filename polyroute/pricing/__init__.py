"""Prices and costs: the versioned list-price catalog (``prices.json``) and the arithmetic
that turns a vendor's usage fields into money. A deployment's ``price`` in config wins."""
