"""The installer behind ``oban-powertools install`` (see :mod:`.installer`)."""

from .installer import InstallReport, Step, install
from .layout import HostPackage, InstallError
from .manifest import MANIFEST_NAME, Manifest

__all__ = [
    "MANIFEST_NAME",
    "HostPackage",
    "InstallError",
    "InstallReport",
    "Manifest",
    "Step",
    "install",
]
