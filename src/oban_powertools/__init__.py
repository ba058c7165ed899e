"""oban-powertools: an audited operator control plane and runtime power tools for oban-py."""

from .config import Config
from .errors import ConfigError, MigrationError, PowertoolsError
from .powertools import Powertools
from .seams import Auth, DisplayContext, DisplayPolicy, Principal, Resource

__all__ = [
    "Auth",
    "Config",
    "ConfigError",
    "DisplayContext",
    "DisplayPolicy",
    "MigrationError",
    "Powertools",
    "PowertoolsError",
    "Principal",
    "Resource",
]
