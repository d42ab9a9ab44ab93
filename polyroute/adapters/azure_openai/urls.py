"""Where an Azure OpenAI request goes.

    deployment form   {endpoint}/openai/deployments/{deployment}{path}?api-version={version}
    v1 form           {endpoint}/openai/v1{path}            (api-version only if configured)

The deployment is the model id polyroute was given (``azure/<deployment>``): Azure routes by
the path and ignores the body's ``model``, which is still sent, as Azure's own SDKs do.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from polyroute.adapters.azure_openai.spec import V1_SUFFIX, options
from polyroute.errors import UpstreamRejected
from polyroute.model.upstream import Endpoint


def is_v1(endpoint: Endpoint) -> bool:
    return endpoint.base_url.endswith(V1_SUFFIX)


def url(endpoint: Endpoint, deployment: str, path: str) -> str:
    """``path`` is the operation: ``/chat/completions``, ``/embeddings``."""
    if is_v1(endpoint):
        base = endpoint.base_url + path
    elif deployment in (".", ".."):
        # Encoded or not, a dot segment would be normalised away: the client would pick
        # another path on the resource, with the gateway's key.
        raise UpstreamRejected(f"'{deployment}' is not an Azure deployment name",
                               param="model", code="invalid_model")
    else:
        base = f"{endpoint.base_url}/openai/deployments/{quote(deployment, safe='')}{path}"
    version = options(endpoint).api_version
    if version:
        return f"{base}?{urlencode({'api-version': version})}"
    return base


def account_url(endpoint: Endpoint, path: str) -> str:
    """Where an operation of the resource, not of a deployment, goes (``/files``,
    ``/batches/{id}``): ``{endpoint}/openai{path}?api-version=…``, or the v1 form."""
    base = endpoint.base_url + path if is_v1(endpoint) else f"{endpoint.base_url}/openai{path}"
    version = options(endpoint).api_version
    if version:
        return f"{base}?{urlencode({'api-version': version})}"
    return base
