"""Amazon Bedrock's Converse protocol: requests signed with SigV4 for a region (or a Bedrock API
key as ``Authorization: Bearer``); a final assistant message is a prefill it continues."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import msgspec

from polyroute.adapters.bedrock_converse.serves import serves
from polyroute.adapters.spec import OptionError, ProtocolSpec
from polyroute.adapters.support import Support
from polyroute.model.upstream import Endpoint

_HOST = re.compile(r"^bedrock-runtime(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com$")


class BedrockOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    region: str | None = None
    """The AWS region requests are signed for. Unset: taken from base_url's host
    (bedrock-runtime.<region>.amazonaws.com)."""
    batch_s3_uri: str | None = None
    """Where OpenAI batches run as Bedrock batch inference jobs keep their input and output
    (``s3://bucket/prefix/``). Unset: this provider runs no batches."""
    batch_role_arn: str | None = None
    """The IAM service role a batch inference job reads and writes batch_s3_uri with."""
    batch_s3_endpoint: str | None = None
    """S3's endpoint for batch files. Unset: https://s3.<region>.amazonaws.com."""
    batch_min_records: int = 100
    """Bedrock's quota "Minimum number of records per batch inference job" (100 by default;
    set per model): a smaller batch is refused before anything is uploaded."""
    batch_max_records: int = 50_000
    """Its quota "Records per batch inference job" (and per input file: polyroute writes one)."""
    batch_max_file_bytes: int = 1_000_000_000
    """Its quota "Batch inference input file size" (1 GB by default): the records' file."""


_S3_URI = re.compile(r"^s3://[a-z0-9][-.a-z0-9]{1,61}[a-z0-9](/[-!_*'().a-zA-Z0-9/]*)?$")
_ROLE_ARN = re.compile(r"^arn:aws(-[^:]+)?:iam::([0-9]{12})?:role/.+$")


def _check_batch(options: BedrockOptions) -> None:
    uri, role = options.batch_s3_uri, options.batch_role_arn
    least, most = options.batch_min_records, options.batch_max_records
    if not 1 <= least <= most:
        raise OptionError("batch_min_records", f"{least} records is not between 1 and "
                          f"batch_max_records ({most})",
                          "set the account's Bedrock quotas: batch_min_records (default 100) "
                          "at most batch_max_records (default 50000)")
    if options.batch_max_file_bytes < 1:
        raise OptionError("batch_max_file_bytes", "it must be a positive number of bytes",
                          "set it to the account's 'Batch inference input file size' quota "
                          "in bytes (default 1000000000)")
    if uri is None and role is None:
        return
    if uri is None or not _S3_URI.match(uri):
        raise OptionError("batch_s3_uri", f"'{uri}' is not an s3://bucket/prefix/ location",
                          "set options.batch_s3_uri to s3://<bucket>/<prefix>/ (with "
                          "batch_role_arn) or remove batch_role_arn")
    if role is None or not _ROLE_ARN.match(role):
        raise OptionError("batch_role_arn", f"'{role}' is not an IAM role ARN",
                          "set options.batch_role_arn to arn:aws:iam::<account>:role/<name>, "
                          "the role Bedrock's batch jobs use to read and write batch_s3_uri")


def _finish(options: BedrockOptions, base_url: str) -> BedrockOptions:
    _check_batch(options)
    if options.region:
        return options
    match = _HOST.match(urlsplit(base_url).hostname or "")
    if match is None:
        raise OptionError("region", "the AWS region cannot be read from base_url",
                          "add options: {region: us-east-1} (or ${AWS_REGION}): requests are "
                          "signed for it")
    return msgspec.structs.replace(options, region=match.group(1))


def options(endpoint: Endpoint) -> BedrockOptions:
    """The endpoint's Bedrock options (the defaults for one built without a config)."""
    found = endpoint.options
    return found if isinstance(found, BedrockOptions) else BedrockOptions()

SUPPORT = Support(
    vendor="Bedrock",
    mapped=frozenset({
        "messages", "model", "models", "stream", "stream_options", "max_tokens",
        "max_completion_tokens", "temperature", "top_p", "top_k", "stop", "tools", "tool_choice",
        "parallel_tool_calls", "response_format", "user", "thinking",
    }),
    why={
        "n": "it returns one answer per request",
        "logprobs": "it returns no token log-probabilities",
        "top_logprobs": "it returns no token log-probabilities",
        "logit_bias": "it has no token biasing",
        "seed": "its sampling cannot be seeded",
        "presence_penalty": "it has no repetition penalties",
        "frequency_penalty": "it has no repetition penalties",
        "reasoning_effort": "each model family takes its own reasoning settings; send 'thinking' "
                            "for Anthropic models",
        "parallel_tool_calls": "it cannot be told to make one call at a time",
        "audio": "it produces no audio",
        "modalities": "it produces text only",
        "prediction": "it has no predicted outputs",
    },
    typed=("n", "seed", "presence_penalty", "frequency_penalty", "reasoning_effort"),
    serial_tool_calls=False,
)
"""What of a chat request Bedrock can carry; anything else a client sent in OpenAI's dialect is a
400 naming it, unless the provider's ``quirks.drop_params`` lists it."""


SPEC = ProtocolSpec(
    name="bedrock",
    adapter="polyroute.adapters.bedrock_converse.adapter:BedrockConverseAdapter",
    auth="bearer",  # a Bedrock API key; without one, SigV4 from the AWS credential chain
    options=BedrockOptions,
    finish=_finish,
    continuation="assistant_prefill",
    support=SUPPORT,
    # Amazon's image models through InvokeModel (an edit is Nova Canvas's IMAGE_VARIATION),
    # and the Rerank API of bedrock-agent-runtime (adapters/bedrock_converse/media.py); the
    # fields each carries, serves.py
    endpoints=frozenset({"images.generations", "images.edits", "rerank"}), serves=serves,
)
