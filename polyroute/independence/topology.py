"""Where each model group's traffic can go: its deployments with vendor, cloud, region,
capabilities and whether they are declared equivalent, read from the compiled config."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from polyroute.config import Deployment, GatewayConfig
from polyroute.model.upstream import Capabilities

DOMAINS = ("vendor", "cloud", "region")
"""What can be lost: a vendor, a cloud, a region."""


@dataclass(frozen=True, slots=True)
class Placement:
    deployment: str
    group: str
    vendor: str
    cloud: str
    region: str
    capabilities: Capabilities
    equivalent: bool

    def domain(self, kind: str) -> str:
        value: str = getattr(self, kind)
        return value

    def serves(self, features: Iterable[str]) -> bool:
        """Offers every capability used (an unknown one counts as not offered: the measures
        never claim traffic can move where nobody knows it can)."""
        return all(self.capabilities.offers(f) is True for f in features)


@dataclass(frozen=True, slots=True)
class Topology:
    groups: Mapping[str, tuple[Placement, ...]]
    fallbacks: Mapping[str, tuple[str, ...]]
    by_deployment: Mapping[str, Placement]

    @classmethod
    def of(cls, config: GatewayConfig) -> Topology:
        groups = {name: tuple(_placement(name, d) for d in g.deployments)
                  for name, g in config.groups.items()}
        fallbacks = {name: tuple(g.fallbacks) for name, g in config.groups.items()}
        by_deployment = {p.deployment: p for ps in groups.values() for p in ps}
        return cls(groups, fallbacks, by_deployment)

    def cloud_of(self, deployment: str | None, vendor: str) -> str:
        placed = self.by_deployment.get(deployment or "")
        return placed.cloud if placed is not None else vendor

    def region_of(self, deployment: str | None) -> str:
        placed = self.by_deployment.get(deployment or "")
        return placed.region if placed is not None else "unknown"

    def targets(self, group: str) -> Sequence[Placement]:
        """Where the group's traffic may be served: its equivalent deployments, then those of
        its fallback groups (the gateway moves there by itself once the group has failed)."""
        found = [p for p in self.groups.get(group, ()) if p.equivalent]
        for other in self.fallbacks.get(group, ()):
            found += [p for p in self.groups.get(other, ()) if p.equivalent]
        return found


def features_of(text: str | None) -> tuple[str, ...]:
    return tuple(f for f in (text or "").split(",") if f)


def _placement(group: str, d: Deployment) -> Placement:
    return Placement(d.name, group, d.vendor, d.cloud or d.vendor, d.region or "unknown",
                     d.capabilities, d.equivalent)
