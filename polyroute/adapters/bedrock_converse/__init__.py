"""Amazon Bedrock's Converse API (``/model/{modelId}/converse`` and ``/converse-stream``):
one wire protocol for every model Bedrock hosts, signed with SigV4."""
