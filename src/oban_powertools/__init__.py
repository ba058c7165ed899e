"""oban-powertools: an audited operator control plane and runtime power tools for oban-py."""

from importlib import metadata as _metadata

from .config import Config
from .errors import ConfigError, MigrationError, PowertoolsError
from .powertools import Powertools
from .seams import Auth, DisplayContext, DisplayPolicy, Principal, Resource

try:
    __version__ = _metadata.version("oban-powertools")
except _metadata.PackageNotFoundError:  # a source tree on sys.path, never installed: no metadata
    __version__ = "0+unknown"

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
    "__version__",
]
