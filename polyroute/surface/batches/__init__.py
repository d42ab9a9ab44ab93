"""OpenAI's Files and Batch APIs (and Anthropic's Message Batches) at the HTTP edge."""
