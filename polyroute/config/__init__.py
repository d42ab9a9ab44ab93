"""Configuration: the file schema, its loading and validation, and the compiled form.

The engine only ever sees :class:`polyroute.config.compiled.GatewayConfig`, an immutable value.
"""

from polyroute.config.compiled import Deployment, Endpoint, GatewayConfig, ModelGroup
from polyroute.config.errors import ConfigError
from polyroute.config.load import load_config
from polyroute.model.price import Price

__all__ = [
    "ConfigError",
    "Deployment",
    "Endpoint",
    "GatewayConfig",
    "ModelGroup",
    "Price",
    "load_config",
]
