"""Development OIDC issuer: the local stack's stand-in for Keycloak.

Run with ``python -m edge.issuer --config PATH``. Production deployments use any
standard OIDC provider; this package only exists so the local stack has one.
"""

from edge.issuer.config import ConfigError, IssuerConfig, load_config, make_config

__all__ = ["ConfigError", "IssuerConfig", "load_config", "make_config"]
