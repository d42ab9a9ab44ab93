"""The cache key: everything that changes the answer, nothing that does not.

In: the tenant, the model group, the messages, tools and tool choice, response format and
every sampling parameter (temperature, top_p, top_k, n, stop, seed, penalties, output limits,
reasoning), and any top-level field polyroute relays without modelling it (``logprobs``,
vendor extensions: they may change the answer). Out: the request's ids and user tags
(``user``, ``metadata``, ``safety_identifier``, ``prompt_cache_key``, ``store``,
``service_tier``), and whether it streams — a stored answer replays either way.
Requests are compared in the canonical model, so clients of different dialects asking the
same thing share an answer. A request holding parts the canonical model cannot carry (kept
for same-dialect passthrough: ``ChatRequest.native.untranslatable``) also counts its
dialect's own fields, so it shares answers only with identical requests of its dialect.
"""

from __future__ import annotations

import hashlib

import msgspec

from polyroute.model.chat import ChatRequest

_IGNORED = frozenset({
    "model", "models", "stream", "stream_options", "user", "metadata", "safety_identifier",
    "prompt_cache_key", "store", "service_tier", "$polyroute.passthrough",
    "$polyroute.continue_final", "$polyroute.native",
})
_MODELLED = frozenset(f.encode_name for f in msgspec.structs.fields(ChatRequest))
_encode = msgspec.json.Encoder(order="sorted").encode


class _Keyed(msgspec.Struct, array_like=True):
    tenant: str
    group: str
    request: ChatRequest
    extra: dict[str, msgspec.Raw]


def cache_key(request: ChatRequest, group: str, tenant: str) -> str:
    """A digest (hex) of what makes the answer; the tenant is hashed in, never stored plain."""
    extra = {k: v for k, v in (request.passthrough or {}).items()
             if k not in _MODELLED and k not in _IGNORED}
    if request.native is not None and request.native.untranslatable is not None:
        # A request passed through natively may carry parts the canonical model cannot
        # (Anthropic's container, mcp_servers …): they may change the answer, so they count.
        extra.update((f"{request.native.protocol}:{k}", v)
                     for k, v in request.native.fields.items() if k not in _IGNORED)
    answer_shaping = msgspec.structs.replace(
        request, model="", models=None, stream=False, stream_options=None, user=None,
        passthrough=None, continue_final=False, native=None)
    body = _encode(_Keyed(tenant, group, answer_shaping, extra))
    return hashlib.blake2b(body, digest_size=20).hexdigest()


def deterministic(request: ChatRequest) -> bool:
    """Only temperature 0 asks for the same answer each time (unset: the vendor's default,
    usually 1)."""
    return request.temperature == 0


def tenant_of(scope: str, key_id: str | None, team: str | None, org: str | None) -> str:
    """Who shares answers under ``scope``. A caller without the scope's entity falls to a
    narrower one (an organisation-less key: its team, else itself), never to a shared
    'nobody' bucket that unrelated keys would meet in."""
    if scope == "global":
        return "*"
    chain = {"org": (("org", org), ("team", team), ("key", key_id)),
             "team": (("team", team), ("key", key_id)),
             "key": (("key", key_id),)}[scope]
    for kind, value in chain:
        if value is not None:
            return f"{kind}:{value}"
    return "anonymous"
