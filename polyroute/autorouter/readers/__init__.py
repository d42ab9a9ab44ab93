"""Readers for the routing-data formats, and a loader that sniffs any directory of them."""

from polyroute.autorouter.readers.detect import FileKind, load_routing_data, sniff

__all__ = ["FileKind", "load_routing_data", "sniff"]
