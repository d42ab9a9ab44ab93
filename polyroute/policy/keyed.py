"""The policy of a gateway with virtual keys: authenticate from the in-memory directory,
admit against limits and budgets (reserving the worst case), settle to the real cost and
append the spend-ledger record. Nothing here waits on the database.
"""

from __future__ import annotations

import hmac
import itertools
import logging
import time
import uuid
from collections.abc import Callable

import msgspec

from polyroute.config.compiled import LimitsSettings
from polyroute.errors import (
    AuthenticationFailed,
    BudgetExceeded,
    PermissionDenied,
    RateLimited,
    ServiceUnavailable,
)
from polyroute.model.media import MEDIA_PATHS, Units
from polyroute.model.price import Price
from polyroute.model.record import RequestRecord
from polyroute.model.usage import Usage
from polyroute.policy import keys
from polyroute.policy.directory import Directory, KeyPrincipal
from polyroute.policy.prices import Prices
from polyroute.policy.types import ANONYMOUS, AdmissionRequest, Principal
from polyroute.pricing.cost import cost_usd, to_nanos, worst_case_nanos
from polyroute.state.limits import Denial, Grant, Limiter, Scope, StateUnavailable
from polyroute.storage.ledger import LedgerEntry, LedgerWriter
from polyroute.storage.usage import period_starts

log = logging.getLogger("polyroute.ledger")

MASTER = Principal(key_id="master")
_encode = msgspec.json.Encoder().encode
_PERIOD_NAMES = {"d": "daily", "m": "monthly", "t": "total"}
_SCOPE_NAMES = {"k": "key", "t": "team", "o": "organisation"}


class KeyPolicy:
    def __init__(
        self,
        directory: Directory,
        limiter: Limiter,
        ledger: LedgerWriter | None,
        prices: Prices,
        limits: LimitsSettings,
        master_key: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._directory = directory
        self._limiter = limiter
        self._ledger = ledger
        self._prices = prices
        self._limits = limits
        self._master = master_key.encode() if master_key else None
        self._clock = clock
        prefix = uuid.uuid4().hex[:12]
        counter = itertools.count(1).__next__
        self._new_id: Callable[[], str] = lambda: f"{prefix}{counter():012x}"
        self._day = (-1, "")
        self._verified: dict[str, tuple[KeyPrincipal, bytes, str]] = {}
        """Per key id: the principal, its digest and the secret that last matched them. A
        client sends the same key on every request; checked once per principal, the HMAC
        (which OpenSSL makes cost far more under load than alone) is skipped after."""
        self.spend_ready = limiter.shared
        """Budgets need the spend so far; in process it is loaded from the ledger at start."""

    @property
    def open_mode(self) -> bool:
        """No master key and no client key: anyone may call (an embedded, loopback setup)."""
        d = self._directory
        return self._master is None and d.loaded and not d.any_keys

    async def authenticate(self, credentials: str | None) -> Principal:
        if credentials is not None and self._master is not None and hmac.compare_digest(
                credentials.encode(), self._master):
            return MASTER
        if self.open_mode:
            return ANONYMOUS
        if credentials is None:
            if not self._directory.loaded and self._master is None:
                raise ServiceUnavailable("The key store is unreachable; retry shortly.")
            raise AuthenticationFailed(
                "No API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'.")
        parsed = keys.parse(credentials)
        if parsed is None:
            raise AuthenticationFailed("Invalid API key.")
        key_id, secret = parsed
        principal = self._directory.principals.get(key_id)
        if principal is None:
            principal = await self._directory.find(key_id)
            if principal is None:
                raise AuthenticationFailed("Invalid API key.")
        if not self._matches(key_id, principal, secret):
            raise AuthenticationFailed("Invalid API key.")
        if principal.revoked:
            raise AuthenticationFailed(f"The key {keys.preview(key_id)} was revoked.")
        if principal.problem is not None:  # its settings are quarantined: fail closed
            raise PermissionDenied(principal.problem)
        if principal.expires_at is not None and principal.expires_at <= self._clock():
            raise AuthenticationFailed(f"The key {keys.preview(key_id)} has expired.")
        return principal

    def _matches(self, key_id: str, principal: KeyPrincipal, secret: str) -> bool:
        """``secret`` is the key's: the same string as last time for the same principal (a
        reload or rotation builds a new one, and its digest is compared too), or its HMAC."""
        seen = self._verified.get(key_id)
        if seen is not None and seen[0] is principal and seen[1] == principal.digest:
            return hmac.compare_digest(secret, seen[2])
        if not hmac.compare_digest(keys.digest(principal.salt, secret), principal.digest):
            return False
        self._verified[key_id] = (principal, principal.digest, secret)
        return True

    async def admit(self, principal: Principal, request: AdmissionRequest) -> object:
        if not isinstance(principal, KeyPrincipal):
            return None  # open mode or the master key: no limits, nobody to charge
        allowed = principal.allowed_models
        if allowed is not None and not request.tool_call:
            # The engine's route already left out the groups this key may not use; checked
            # again here because the policy, not the router, is the authority on it.
            for group in (request.model_group, *request.groups):
                if group not in allowed:
                    raise PermissionDenied(
                        f"This key may not use the model '{group}'.", param="model")
        now = self._clock()
        cost = 0
        if principal.budgeted and not request.tool_call:
            if not self.spend_ready:
                raise ServiceUnavailable(
                    "Spend totals are still loading from the ledger (its database is "
                    "unreachable); budgeted keys are served once they are.")
            cost = self._worst_case(request)
        lease = self._new_id()
        if not principal.limited:
            return Grant(lease, principal.scopes, int(now), 0, 0,
                         self._limiter.periods(int(now)), limited=False)
        tokens = request.estimated_input_tokens + request.output_tokens(
            self._limits.default_max_output_tokens)
        try:
            result = await self._limiter.acquire(lease, principal.scopes, tokens, cost, now)
        except StateUnavailable:
            # Rate limits may fail open (then counted per replica); money never does: spend
            # past a budget cannot be taken back, so a budgeted request waits for Redis.
            if not principal.fail_open or principal.budgeted:
                raise ServiceUnavailable(
                    "The shared limits store is unreachable and this "
                    + ("key has a budget" if principal.budgeted else "team fails closed")
                    + "; retry shortly.") from None
            result = self._limiter.take_locally(lease, principal.scopes, tokens, cost, now)
        if isinstance(result, Denial):
            raise _refusal(result, principal, now)
        return result

    async def reserve(self, principal: Principal, request: AdmissionRequest) -> object:
        """A batch's worst case (``request.prices`` are already the batch prices), held until
        :meth:`settle_batch`. Money only: a batch runs upstream for minutes or hours, so it
        takes no rate-limit or concurrency slot, which would starve the key's live traffic."""
        if not isinstance(principal, KeyPrincipal):
            return None
        for group in (request.model_group, *request.groups):
            if principal.allowed_models is not None and group not in principal.allowed_models:
                raise PermissionDenied(f"This key may not use the model '{group}'.",
                                       param="model")
        now = self._clock()
        lease = self._new_id()
        if not principal.budgeted:
            return Grant(lease, principal.scopes, int(now), 0, 0,
                         self._limiter.periods(int(now)), limited=False)
        if not self.spend_ready:
            raise ServiceUnavailable("Spend totals are still loading from the ledger; "
                                     "budgeted keys are served once they are.")
        cost = self._worst_case(request)
        scopes = [Scope(s.name, budgets=s.budgets) for s in principal.scopes]
        try:
            result = await self._limiter.acquire(lease, scopes, 0, cost, now)
        except StateUnavailable:
            raise ServiceUnavailable("The shared limits store is unreachable and this key has "
                                     "a budget; retry shortly.") from None
        if isinstance(result, Denial):
            raise _refusal(result, principal, now)
        return result

    def settle_batch(self, ticket: object, record: RequestRecord, factor: float) -> None:
        """A batch ended: its real cost (``record.usage`` at the batch price: ``factor`` of
        the deployment's) into the ledger and the spend counters, the reservation released.
        ``ticket`` None (the gateway restarted since the batch was created): the reservation
        died with the process, the cost is charged all the same."""
        if ticket is None and record.key_id is not None:
            principal = self._directory.principals.get(record.key_id)
            if principal is not None:
                now = int(self._clock())
                ticket = Grant(self._new_id(), principal.scopes, now, 0, 0,
                               self._limiter.periods(now), limited=False)
        self._settle(ticket, record, factor)

    def settle(self, ticket: object, record: RequestRecord) -> None:
        self._settle(ticket, record, 1.0)

    def _settle(self, ticket: object, record: RequestRecord, factor: float) -> None:
        usage: Usage | None
        cost: float | None
        source: str | None
        if record.cache in ("hit", "semantic"):  # no tokens spent: $0, and what it would have cost
            usage, estimated, cost, source = None, False, 0.0, "cache"
            if record.saved_usage is not None:  # None: the hit was refused (admission)
                record.saved_usd = self._cost(record.vendor, record.upstream_model,
                                              record.saved_usage)[0]
        else:
            usage, estimated = billed_usage(record)
            cost, source = self._cost(record.vendor, record.upstream_model, usage, record.units)
            if factor != 1.0 and cost is not None:
                cost, source = cost * factor, f"{source}:batch"
        if record.charges:  # a stream finished by several attempts: each at its own price
            parts = [self._cost(c.vendor, c.upstream_model, c.usage) for c in record.charges]
            if any(part is None for part, _ in parts):
                cost, source = None, "unpriced"
            else:
                cost = sum(part or 0.0 for part, _ in parts)
        record.cost_usd = cost  # for the observers (traces, request logs), which run next
        if self._ledger is not None:
            try:
                self._ledger.append(self._entry(record, usage, estimated, cost, source))
            except OSError as exc:  # a full or broken disk must not fail the request itself
                log.error("ledger: could not spool the record of %s: %s", record.request_id,
                          exc)
        if isinstance(ticket, Grant):
            tokens = (usage.prompt_tokens + usage.completion_tokens) if usage else 0
            self._limiter.release(ticket, to_nanos(cost) if cost else 0, tokens)

    def _cost(self, vendor: str | None, model: str | None, usage: Usage | None,
              units: Units | None = None) -> tuple[float | None, str | None]:
        """(cost in USD, price source) of ``usage`` on one deployment; cost None: tokens were
        used at an unknown price (never a made-up 0). A media request's ``units`` are billed
        instead of its tokens when the price lists them (``per_unit``)."""
        price = self._prices.of(vendor, model)
        if units is not None and units.quantity and price is not None:
            each = price.unit_price(units.unit)
            if each is not None:
                return each * units.quantity, price.source
        if usage is None or not (usage.prompt_tokens or usage.completion_tokens):
            if units is not None and units.quantity:
                return None, "unpriced"  # units spent, and no price for them
            return 0.0, price.source if price is not None else None
        if price is None:
            return None, "unpriced"
        return cost_usd(price, usage), price.source

    def output_cap(self, principal: Principal) -> int | None:
        # Only for money: a budget reservation is exact only if the upstream stops where the
        # reservation did. Rate limits are corrected at settlement, so they need no cap.
        if isinstance(principal, KeyPrincipal) and principal.budgeted:
            return self._limits.default_max_output_tokens
        return None

    def _worst_case(self, request: AdmissionRequest) -> int:
        output = request.output_tokens(self._limits.default_max_output_tokens)
        prices: list[Price | None] = list(request.prices)
        if len(prices) == 1 and prices[0] is None:
            prices = [self._prices.of_group(request.model_group)]
        worst = 0
        for price in prices:
            if price is None:
                if self._limits.allow_unpriced:
                    continue
                raise PermissionDenied(
                    f"The model '{request.model_group}' may be served by a deployment whose "
                    "price is unknown, so a key with a budget cannot use it (set its price "
                    "in the config, or limits.allow_unpriced).", param="model")
            units = request.units
            each = price.unit_price(units.unit) if units is not None else None
            if units is not None and each is not None:  # billed by its units, not tokens
                worst = max(worst, to_nanos(each * units.quantity))
                continue
            worst = max(worst, worst_case_nanos(price, request.estimated_input_tokens, output))
        return worst

    def _entry(self, r: RequestRecord, u: Usage | None, estimated: bool, cost: float | None,
               source: str | None) -> LedgerEntry:
        second = int(r.started_at)
        if second != self._day[0]:
            self._day = (second, time.strftime("%Y-%m-%d", time.gmtime(second)))
        day = self._day[1]
        attempts = _encode([(a.deployment, a.vendor, a.error_class or "ok", a.status,
                             round(a.latency_s * 1000, 3)) for a in r.attempts]).decode()
        return LedgerEntry(
            entry_id=self._new_id(), request_id=r.request_id, ts=r.started_at, day=day,
            key_id=r.key_id, team=r.team, org=r.org, endpoint=r.endpoint,
            requested_model=r.requested_model, model_group=r.model_group, vendor=r.vendor,
            deployment=r.deployment, upstream_model=r.upstream_model, status=r.status,
            error_class=r.error_class,
            prompt_tokens=u.prompt_tokens if u else 0,
            completion_tokens=u.completion_tokens if u else 0,
            cached_tokens=u.cached_tokens if u else 0,
            cache_write_tokens=u.cache_creation_tokens if u else 0,
            reasoning_tokens=u.reasoning_tokens if u else 0,
            cost_usd=cost, priced=0 if cost is None else 1, price_source=source,
            latency_ms=round(r.latency_s * 1000, 3), attempts=attempts,
            usage_estimated=int(estimated), client_request_id=r.client_request_id,
            stream=int(r.stream),
            ttft_ms=round(r.ttft_s * 1000, 3) if r.ttft_s is not None else None,
            route=r.route, cache=r.cache, saved_usd=r.saved_usd, features=r.features,
            governance=r.governance, prompt=r.prompt)


def billed_usage(record: RequestRecord) -> tuple[Usage | None, bool]:
    """The usage to charge, and whether it is an estimate. An answer that came without the
    upstream's usage (a client that hung up before a stream's usage chunk, a provider that
    never sends it: ``stream_usage: false``, llama.cpp, or omits it altogether) is charged the
    admission's prompt estimate and what was relayed, never nothing: otherwise a client could
    make any request free. A request that never answered is charged nothing."""
    usage = record.usage
    if record.endpoint in MEDIA_PATHS:
        # billed by its units (estimated when an upload's duration could not be read), or
        # the tokens its upstream counted
        return usage, record.units_estimated
    if record.stream:
        if record.ttft_s is None or (usage is not None and record.error_class is None):
            return usage, False  # it never answered, or it ended whole with the vendor's count
    elif usage is not None or record.error_class is not None:
        return usage, False  # the vendor's count, or a failure
    output = (record.output_units + 3) // 4
    if record.stream:
        output = max(1, output)  # its first content arrived
    if record.output_limit is not None:  # the upstream stopped there, whatever we counted
        output = min(output, record.output_limit)
    if usage is None:
        prompt = record.estimated_input_tokens
        return Usage(prompt_tokens=prompt, completion_tokens=output,
                     total_tokens=prompt + output), True
    # A stream cut short after a partial usage block (Anthropic reports the prompt first, the
    # output at the end): complete it from what was relayed.
    prompt, completion = usage.prompt_tokens, usage.completion_tokens
    if prompt and completion >= output:
        return usage, False
    prompt = prompt or record.estimated_input_tokens
    completion = max(completion, output)
    return msgspec.structs.replace(usage, prompt_tokens=prompt, completion_tokens=completion,
                                   total_tokens=prompt + completion), True


def _refusal(denial: Denial, principal: KeyPrincipal, now: float) -> Exception:
    kind, _, name = denial.scope.partition(":")
    who = f"{_SCOPE_NAMES.get(kind, kind)} {keys.preview(name) if kind == 'k' else name}"
    scope = next((s for s in principal.scopes if s.name == denial.scope), None)
    if denial.kind == "budget":
        period = denial.period or "t"
        retry = None
        if period == "d":
            retry = period_starts(now)[0] + 86400 - now
        return BudgetExceeded(
            f"The {_PERIOD_NAMES[period]} budget of {who} is spent (or this request's "
            "worst-case cost would exceed what is left).", retry_after=retry)
    if denial.kind == "rpm":
        limit = scope.rpm if scope else None
        return RateLimited(f"Rate limit of {who} reached: {limit} requests per minute.",
                           code="rpm_limit_exceeded", retry_after=denial.retry_after)
    if denial.kind == "tpm":
        limit = scope.tpm if scope else None
        if denial.retry_after is None:
            return RateLimited(
                f"This request alone (input estimate + max output tokens × n) exceeds the "
                f"{limit} tokens-per-minute limit of {who}.", code="tpm_limit_exceeded")
        return RateLimited(f"Token rate limit of {who} reached: {limit} tokens per minute.",
                           code="tpm_limit_exceeded", retry_after=denial.retry_after)
    limit = scope.max_concurrent if scope else None
    return RateLimited(f"Concurrency limit of {who} reached: {limit} requests at once.",
                       code="concurrency_limit_exceeded", retry_after=denial.retry_after)
