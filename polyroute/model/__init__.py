"""Canonical types shared by every layer. This package imports nothing else of polyroute."""
