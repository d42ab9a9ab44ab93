"""Resolve a requested model name to a group and order its deployments for one attempt loop."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from random import Random

from polyroute.config import Deployment, GatewayConfig, ModelGroup
from polyroute.engine.strategies import STRATEGIES, RoutingContext
from polyroute.errors import InvalidRequest, ModelNotFound

_OPEN_GROUP_CACHE = 4096  # '<vendor>/<model>' names are client-chosen: bound the memo


@dataclass(frozen=True, slots=True)
class Route:
    group: str
    candidates: list[Deployment]


class Router:
    def __init__(self, config: GatewayConfig, rng: Random | None = None) -> None:
        self._groups = config.groups
        self._open_vendors = config.open_vendors
        self._ctx = RoutingContext(rng or Random())
        self._open_groups: OrderedDict[str, ModelGroup] = OrderedDict()

    def route(self, model: str) -> Route:
        group = self.group(model)
        strategy = STRATEGIES[group.routing]
        return Route(group.name, strategy(group.deployments, self._ctx))

    def group(self, model: str) -> ModelGroup:
        group = self._groups.get(model)
        if group is not None:
            return group
        group = self._open_groups.get(model)
        if group is not None:
            self._open_groups.move_to_end(model)
            return group
        group = self._open_group(model)
        self._open_groups[model] = group
        if len(self._open_groups) > _OPEN_GROUP_CACHE:
            self._open_groups.popitem(last=False)
        return group

    def _open_group(self, model: str) -> ModelGroup:
        vendor, sep, upstream_model = model.partition("/")
        endpoint = self._open_vendors.get(vendor) if sep else None
        if endpoint is None:
            raise ModelNotFound(self._not_found_message(model, vendor if sep else None),
                                param="model")
        if not upstream_model:
            raise InvalidRequest(f"'{model}' names no model after the vendor prefix",
                                 param="model")
        deployment = Deployment(name=model, vendor=vendor, model=upstream_model,
                                endpoint=endpoint)
        return ModelGroup(model, "priority", (deployment,))

    def _not_found_message(self, model: str, vendor: str | None) -> str:
        served = sorted(self._groups)[:20]
        vendors = sorted(self._open_vendors)
        message = f"The model '{model}' does not exist on this gateway"
        if vendor is not None:
            message += f" (no vendor '{vendor}' is configured)"
        offers = []
        if served:
            offers.append(f"the model groups {', '.join(served)}")
        if vendors:
            offers.append(f"'<vendor>/<model id>' for the vendors {', '.join(vendors)}")
        if offers:
            return f"{message}. It serves {' and '.join(offers)}."
        return (f"{message}. No vendor is configured: set OPENAI_API_KEY (or another vendor's "
                "key) or pass --config.")
