"""What the installer wrote, by content hash, so it can tell a host's edit from its own file.

The manifest lives beside the project (``.oban-powertools-install.json``). It holds no
time stamps, so re-running the installer rewrites nothing when nothing changed. It also
tells ``oban-powertools doctor`` where the host's config is.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .layout import InstallError

MANIFEST_NAME = ".oban-powertools-install.json"
FORMAT = 1


def content_hash(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(slots=True)
class Manifest:
    package: str  # dotted module of the host package
    import_root: str  # folder to put on sys.path, relative to the project ("." or "src")
    config: str  # import path of the config factory, for doctor
    files: dict[str, str] = field(default_factory=dict)  # project-relative path -> hash
    mount: dict[str, str] = field(default_factory=dict)  # {"file": ..., "state": "applied"}

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "format": FORMAT,
            "written_by": "oban-powertools install",
            "package": self.package,
            "import_root": self.import_root,
            "config": self.config,
            "files": dict(sorted(self.files.items())),
        }
        if self.mount:
            data["mount"] = dict(sorted(self.mount.items()))
        return json.dumps(data, indent=2) + "\n"


def load(project_dir: Path) -> Manifest | None:
    path = project_dir / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        files = data.get("files", {})
        mount = data.get("mount", {})
        manifest = Manifest(
            package=str(data["package"]),
            import_root=str(data["import_root"]),
            config=str(data["config"]),
            files={str(k): str(v) for k, v in files.items()},
            mount={str(k): str(v) for k, v in mount.items()},
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InstallError(
            f"{MANIFEST_NAME} is not a manifest this version can read ({exc}); "
            "restore it from version control or delete it (install then treats existing "
            "files as the host's and overwrites nothing)"
        ) from exc
    return manifest
