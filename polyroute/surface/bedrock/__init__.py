"""Amazon Bedrock's Converse API inbound (``POST /model/{modelId}/converse`` and
``/converse-stream``), so boto3's ``bedrock-runtime`` client can call polyroute."""
