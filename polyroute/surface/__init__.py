"""HTTP in front: thin handlers that decode a dialect, call the engine and encode the answer."""
