"""Hydra search-path plugin: config files from outside medalign join its config tree.

Two sources, after medalign's own `conf/` (so a built-in name is never shadowed):
- installed plugin packages: an entry point in the group `medalign.conf` names a package
  holding config groups (`my_plugin/conf/dataset/my_data.yaml`):

      [project.entry-points."medalign.conf"]
      my_plugin = "my_plugin.conf"

- `MEDALIGN_CONFIG_PATH`: folders laid out like `conf/` (os.pathsep-separated), for a
  user's own dataset YAMLs without a package:  MEDALIGN_CONFIG_PATH=~/my_conf

Every Hydra composition sees them: the command line, the curriculum's stages and the
dataset catalogue's lookups (medalign.compose). Hydra only discovers plugins in the
`hydra_plugins` namespace; medalign.compose puts this folder's parent on sys.path.
"""

from __future__ import annotations

import os
from importlib.metadata import entry_points
from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

CONF_GROUP = "medalign.conf"
CONFIG_PATH_VAR = "MEDALIGN_CONFIG_PATH"


class MedalignSearchPathPlugin(SearchPathPlugin):
    """Appends the plugin packages' config folders and $MEDALIGN_CONFIG_PATH."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        for point in entry_points(group=CONF_GROUP):
            search_path.append(f"medalign-plugin-{point.name}", f"pkg://{point.value}")
        for folder in os.environ.get(CONFIG_PATH_VAR, "").split(os.pathsep):
            if folder.strip():
                path = Path(folder).expanduser().resolve()
                search_path.append("medalign-user", f"file://{path}")
