"""``polyroute drill``: rehearse losing a vendor. Every provider of a config is replaced by a
simulator on loopback, a workload runs once with all of them healthy and once with the chosen
ones failing, and the report says what each model group would have lived through."""
