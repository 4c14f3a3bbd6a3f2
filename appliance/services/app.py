"""The open appliance: its config and catalog, for one command or one web process."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from appliance.catalog import Catalog
from appliance.config import Config
from appliance.layout import Layout


def layout_of(config: Config) -> Layout:
    """The data dir's layout as configured."""
    return Layout(config.data_path, socket_override=config.socket)


@dataclass(frozen=True)
class App:
    """Config and catalog, opened together."""

    config: Config
    catalog: Catalog

    def current_config(self) -> Config:
        """The config with the settings an administrator changed on the box (read anew,
        so a change on the tablet counts at once)."""
        return self.catalog.settings.effective(self.config)

    @property
    def layout(self) -> Layout:
        """Where everything lives."""
        return self.catalog.layout


@contextmanager
def open_app(config: Config) -> Iterator[App]:
    """Open the catalog of the configured data dir for the length of a block."""
    with Catalog(layout_of(config)) as catalog:
        yield App(config, catalog)
