"""The price of whatever served a request: the deployment's configured price, else the
catalog's list price for its vendor and model, else unknown."""

from __future__ import annotations

from collections import OrderedDict

from polyroute.config.compiled import GatewayConfig
from polyroute.model.price import Price
from polyroute.pricing.catalog import PriceCatalog

_CACHE = 4096  # '<vendor>/<model>' names are client-chosen: bound the memo


class Prices:
    def __init__(self, config: GatewayConfig, catalog: PriceCatalog) -> None:
        self._catalog = catalog
        self._configured = _configured(config)
        self._memo: OrderedDict[tuple[str, str], Price | None] = OrderedDict()

    def adopt(self, config: GatewayConfig) -> None:
        """A reloaded config's prices, for requests settled from now on."""
        self._configured = _configured(config)

    def of(self, vendor: str | None, model: str | None) -> Price | None:
        if vendor is None or model is None:
            return None
        key = (vendor, model)
        price = self._configured.get(key)
        if price is not None:
            return price
        if key in self._memo:
            return self._memo[key]
        price = self._catalog.price(vendor, model)
        self._memo[key] = price
        if len(self._memo) > _CACHE:
            self._memo.popitem(last=False)
        return price

    def batch_factor(self, vendor: str) -> float:
        """The fraction of its price a batch pays on ``vendor`` (the catalog's ``batch``)."""
        return self._catalog.batch_factor(vendor)

    def of_group(self, group: str) -> Price | None:
        """A '<vendor>/<model>' group made on the fly has one deployment, named alike."""
        vendor, sep, model = group.partition("/")
        return self.of(vendor, model) if sep else None


def _configured(config: GatewayConfig) -> dict[tuple[str, str], Price]:
    return {(dep.vendor, dep.model): dep.price for group in config.groups.values()
            for dep in group.deployments if dep.price is not None}
