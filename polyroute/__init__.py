"""polyroute: one endpoint in front of every LLM vendor."""

__version__ = "0.1.0"
