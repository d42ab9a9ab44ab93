"""Resolve a requested model name to a group and order its deployments for one attempt loop."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from random import Random

from polyroute.autorouter import Decision
from polyroute.config import Deployment, GatewayConfig, ModelGroup
from polyroute.config.compiled import CascadePolicy, Resilience
from polyroute.engine.affinity import PrefixAffinity
from polyroute.engine.auto import AutoRoutes
from polyroute.engine.caps import ShareCaps
from polyroute.engine.estimate import estimate_input_tokens
from polyroute.engine.room import Room
from polyroute.engine.strategies import STRATEGIES, Ranked, RoutingContext
from polyroute.engine.tags import carrying
from polyroute.errors import InvalidRequest, ModelNotFound
from polyroute.guardrails.redact import Redactor
from polyroute.model.chat import ChatRequest
from polyroute.model.names import name_problem

_OPEN_GROUP_CACHE = 4096  # '<vendor>/<model>' names are client-chosen: bound the memo


@dataclass(frozen=True, slots=True)
class Route:
    group: str
    candidates: list[Deployment]
    resilience: Resilience
    decision: Decision | None = None
    """The auto-router's choice and scores, for auto groups."""
    origins: Mapping[str, str] = field(default_factory=dict)
    """Deployment name → the group it came from (empty: all from ``group``), so the attempt
    loop can tell another deployment of the same model from a different model."""
    groups: tuple[str, ...] = ()
    """The groups besides ``group`` whose deployments are among the candidates."""
    refused: tuple[str, ...] = ()
    """Fallback or extra groups left out because the caller may not use them."""
    reason: str | None = None
    """Why the requested group's deployments are in this order (strategies that read the
    room, and tag selection): for ``x-polyroute-route`` and the ledger."""
    kind: str | None = None
    """``<strategy>/<kind>`` of that reason: a bounded metric label."""
    redactor: Redactor | None = None
    """Values a governance policy redacted from the prompt, to restore in the answer."""
    capped: tuple[str, str] | None = None
    """(kind, reason) when a vendor-share cap moved the first choice (``caps/steered``) or
    could not be met (``caps/unmet``)."""
    cascade: CascadePolicy | None = None
    """A cascade group's judges: ``candidates`` are its steps, cheapest first."""


_READS_THE_ROOM = frozenset({"least_latency", "least_busy", "quota", "cost"})
_LEARNS_FROM_THE_ROOM = frozenset({"least_latency", "least_busy", "quota"})
"""Strategies whose order depends on what the room learns from each attempt (latencies,
requests in flight, vendors' rate-limit headers). Without one, the room learns nothing: that
bookkeeping is most of what a request costs the engine beyond the attempt itself."""


class Router:
    def __init__(
        self, config: GatewayConfig, rng: Random | None = None, auto: AutoRoutes | None = None,
        room: Room | None = None,
        affinity: PrefixAffinity | None = None, caps: ShareCaps | None = None,
    ) -> None:
        self._affinity = affinity
        self._groups = config.groups
        self._open_vendors = config.open_vendors
        self._resilience = config.resilience
        self._auto = auto
        self.room = room or Room()
        strategies = {g.routing for g in config.groups.values()}
        self.learns = bool(strategies & _LEARNS_FROM_THE_ROOM)
        """Whether requests are held in the room (in flight, latency): a strategy reads it.
        After a reload that first names such a strategy, it learns from then on."""
        self.room.watch_headers = "quota" in strategies
        self._ctx = RoutingContext(rng or Random(), self.room)
        self._open_groups: OrderedDict[str, ModelGroup] = OrderedDict()
        self.caps = caps or ShareCaps(config)
        """Vendor-share caps and their windows: one per process, handed on by a reload."""

    def route(
        self, model: str, also: Sequence[str] = (), request: ChatRequest | None = None,
        allowed: frozenset[str] | None = None, tags: frozenset[str] = frozenset(),
        team: str | None = None, org: str | None = None,
    ) -> Route:
        """The deployments to try, in order: the group's own (by its strategy), then its
        configured fallback groups', then those of the request's own extra ``models``. The
        first group's resilience settings govern the whole request.

        ``allowed`` (None: all) is the caller's allow-list: a fallback or extra group outside
        it is left out, never tried, and named in ``refused``. The requested group itself is
        kept, whatever the list says: the policy refuses the whole request for it.

        ``tags`` (``x-polyroute-tags``) keep only the deployments carrying every one of them,
        in each group; a request no deployment of the requested group can take is refused.

        Vendor-share caps of the group, ``team`` and ``org`` then steer the first choice
        (``engine/caps.py``)."""
        route = self._route(model, also, request, allowed, tags)
        if not self.caps.active:
            return route
        steered = self.caps.steer(route.group, route.candidates, route.origins, team, org)
        if steered is None:
            return route
        order, kind, reason = steered
        return replace(route, candidates=order, capped=(kind, reason))

    def _route(
        self, model: str, also: Sequence[str], request: ChatRequest | None,
        allowed: frozenset[str] | None, tags: frozenset[str],
    ) -> Route:
        group = self.group(model, allowed)
        decision = None
        if group.cascade is not None:  # its steps in the order listed; no fallbacks (config)
            steps = carrying(group.deployments, tags) if tags else list(group.deployments)
            if not steps:
                raise InvalidRequest(
                    f"No deployment of model '{group.name}' carries the tags "
                    f"{', '.join(sorted(tags))} (x-polyroute-tags).", param="x-polyroute-tags")
            return Route(group.name, steps, group.resilience, cascade=group.cascade)
        if tags:
            return self._tagged(group, also, request, allowed, tags)
        if group.routing == "auto" and self._auto is not None:
            ordered, decision = self._auto.order(group, request)
            if not group.fallbacks and not also:
                return Route(group.name, ordered, group.resilience, decision)
        if not group.fallbacks and not also:  # the common case, kept cheap
            if len(group.deployments) == 1:
                return Route(group.name, list(group.deployments), group.resilience)
            ordered = self._order(group, request)
            if self._affinity is not None and group.routing == "weighted" \
                    and group.prompt_affinity:
                ordered = self._affinity.steer(group.name, ordered, request)
            return Route(group.name, ordered, group.resilience, reason=_reason(ordered),
                         kind=_kind(group, ordered))
        return self._gather(group, also, request, allowed, decision)

    def _tagged(self, group: ModelGroup, also: Sequence[str], request: ChatRequest | None,
                allowed: frozenset[str] | None, tags: frozenset[str]) -> Route:
        kept = carrying(group.deployments, tags)
        if not kept:
            raise InvalidRequest(
                f"No deployment of model '{group.name}' carries the tags "
                f"{', '.join(sorted(tags))} (x-polyroute-tags).", param="x-polyroute-tags")
        return self._gather(group, also, request, allowed, None, tags)

    def _gather(self, group: ModelGroup, also: Sequence[str], request: ChatRequest | None,
                allowed: frozenset[str] | None, decision: Decision | None,
                tags: frozenset[str] = frozenset()) -> Route:
        candidates: list[Deployment] = []
        origins: dict[str, str] = {}
        seen_groups: set[str] = set()
        seen_deployments: set[str] = set()
        used: list[str] = []
        refused: list[str] = []
        pending = [group.name, *group.fallbacks]
        for name in also:
            # raises for an unknown name: say so rather than skip it
            extra = self.group(name, allowed)
            pending += [extra.name, *extra.fallbacks]
        first: list[Deployment] = []
        for name in pending:
            if name in seen_groups:
                continue
            seen_groups.add(name)
            if allowed is not None and name != group.name and name not in allowed:
                refused.append(name)
                continue
            if name != group.name:
                used.append(name)
            member = self.group(name, allowed)
            ordered = self._order(member, request, tags)
            if member is group:
                first = ordered
            for dep in ordered:
                if dep.name not in seen_deployments:
                    seen_deployments.add(dep.name)
                    candidates.append(dep)
                    origins[dep.name] = member.name
        reason, kind = _reason(first), _kind(group, first)
        if tags:
            reason = f"tags {','.join(sorted(tags))}" + (f"; {reason}" if reason else "")
            kind = kind or "tags"
        return Route(group.name, candidates, group.resilience, decision, origins,
                     tuple(used), tuple(refused), reason, kind)

    def _order(self, group: ModelGroup, request: ChatRequest | None,
               tags: frozenset[str] = frozenset()) -> list[Deployment]:
        deployments: Sequence[Deployment] = group.deployments
        if tags:
            deployments = carrying(deployments, tags)
            if not deployments:
                return []
        if group.routing == "cascade":  # a cascade named as another group's fallback
            return list(deployments)
        if group.routing == "auto" and self._auto is not None:
            if tags:  # the auto-router ranks the whole group: keep its order, tagged only
                names = {d.name for d in deployments}
                return [d for d in self._auto.order(group, request)[0] if d.name in names]
            return self._auto.order(group, request)[0]
        if len(deployments) == 1:
            return list(deployments)
        ctx = self._ctx
        if group.routing in _READS_THE_ROOM:
            ctx = RoutingContext(ctx.rng, self.room, group.knobs)
            if request is not None:
                ctx.stream = request.stream
                if group.routing == "cost":
                    ctx.input_tokens = estimate_input_tokens(request)
                    ctx.output_tokens = (request.max_completion_tokens or request.max_tokens
                                         or 0)
        return STRATEGIES[group.routing](deployments, ctx)

    @property
    def deployments(self) -> list[Deployment]:
        """Every configured deployment (for keeping state across a reload)."""
        return [d for g in self._groups.values() for d in g.deployments]

    def known(self, name: str) -> ModelGroup | None:
        """The configured group of that name, if any."""
        return self._groups.get(name)

    def group(self, model: str, allowed: frozenset[str] | None = None) -> ModelGroup:
        """The group ``model`` names, or ModelNotFound (whose text lists only what a caller
        restricted to ``allowed`` may use)."""
        group = self._groups.get(model)
        if group is not None:
            return group
        group = self._open_groups.get(model)
        if group is not None:
            self._open_groups.move_to_end(model)
            return group
        group = self._open_group(model, allowed)
        self._open_groups[model] = group
        if len(self._open_groups) > _OPEN_GROUP_CACHE:
            self._open_groups.popitem(last=False)
        return group

    def _open_group(self, model: str, allowed: frozenset[str] | None) -> ModelGroup:
        problem = name_problem(model)  # the decoders bound names; this guards other callers
        if problem is not None:
            raise InvalidRequest(f"Invalid model name: {problem}.", param="model")
        vendor, sep, upstream_model = model.partition("/")
        endpoint = self._open_vendors.get(vendor) if sep else None
        if endpoint is None:
            raise ModelNotFound(
                self._not_found_message(model, vendor if sep else None, allowed),
                param="model")
        if not upstream_model:
            raise InvalidRequest(f"'{model}' names no model after the vendor prefix",
                                 param="model")
        deployment = Deployment(name=model, vendor=vendor, model=upstream_model,
                                endpoint=endpoint)
        return ModelGroup(model, "priority", (deployment,), resilience=self._resilience)

    def _not_found_message(
        self, model: str, vendor: str | None, allowed: frozenset[str] | None
    ) -> str:
        message = f"The model '{model}' does not exist on this gateway"
        if vendor is not None:
            message += f" (no vendor '{vendor}' is configured)"
        if allowed is not None:  # name only what this caller may use
            served = sorted(allowed)[:20]
            return (f"{message}. This key may use {', '.join(served)}." if served
                    else f"{message}. This key may use no model.")
        served = sorted(self._groups)[:20]
        vendors = sorted(self._open_vendors)
        offers = []
        if served:
            offers.append(f"the model groups {', '.join(served)}")
        if vendors:
            offers.append(f"'<vendor>/<model id>' for the vendors {', '.join(vendors)}")
        if offers and vendor is None and vendors:
            # A bare model id is the commonest slip with discovered vendors: name the fix.
            meant = " or ".join(f"'{v}/{model}'" for v in vendors[:3])
            return f"{message}. It serves {' and '.join(offers)}: did you mean {meant}?"
        if offers:
            return f"{message}. It serves {' and '.join(offers)}."
        return (f"{message}. No vendor is configured: set OPENAI_API_KEY (or another vendor's "
                "key) or pass --config.")


def _reason(ordered: list[Deployment]) -> str | None:
    return ordered.reason if isinstance(ordered, Ranked) else None


def _kind(group: ModelGroup, ordered: list[Deployment]) -> str | None:
    return f"{group.routing}/{ordered.kind}" if isinstance(ordered, Ranked) else None
