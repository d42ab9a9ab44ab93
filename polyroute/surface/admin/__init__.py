"""The admin JSON API (keys, teams, organisations, budgets, usage) and its OpenAPI document.
Every route needs the master key; a created key is shown once and never again."""
