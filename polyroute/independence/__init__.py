"""Vendor independence (issue 14): how much of the traffic depends on each vendor, cloud and
region, what losing one would take down, measured from the ledger and the config."""
