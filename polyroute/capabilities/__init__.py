"""The versioned capability catalog: what known models can do (issue 14)."""
