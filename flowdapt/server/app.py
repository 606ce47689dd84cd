"""``FlowdaptApp``: the jupyter_server extension that runs flowdapt's services.

Loaded by ``jupyter lab`` / ``jupyter server`` (enabled by ``jupyter_server_config.d/flowdapt.json``),
by ``flowdapt lab``, and headless by ``flowdapt serve``. The services start once the server's
event loop runs and stop with the server (runs drained, executor closed, history flushed).
While they run, the server's root dir is the workbench root (notebook targets in requests stay
inside it), kernels started by the server inherit ``FLOWDAPT_URL`` / ``FLOWDAPT_TOKEN`` (their
``%flowdapt`` magics and name lookups go to this server) and ``FLOWDAPT_APP_DIR`` (they share its
app dir, so its stage modules and artifacts), and ``server.json`` in the app dir tells local clients
where the server is. Run, stage, trigger and resource events reach the browser through the Jupyter
server's event bus (:mod:`flowdapt.server.live`).
"""

from __future__ import annotations

import os
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from jupyter_server.utils import url_path_join
from traitlets import Float, Int, Unicode

from flowdapt.notebook.paths import set_workbench_root
from flowdapt.server.handlers import ROUTES
from flowdapt.server.live import LiveUpdates
from flowdapt.server.runtime import remove_runtime_file, write_runtime_file
from flowdapt.server.services import ServerOptions, Services
from flowdapt.settings import get_settings

KERNEL_ENV = ("FLOWDAPT_URL", "FLOWDAPT_TOKEN", "FLOWDAPT_APP_DIR")


class FlowdaptApp(ExtensionApp):
    """Workflows, triggers, events and run history inside the Jupyter server, under ``flowdapt/api/v1``."""

    name = "flowdapt"
    description = "flowdapt workflow, trigger and event services with a REST API"

    max_concurrent_runs = Int(8, config=True, help="Runs that execute at once; more wait in a queue (0: no limit).")
    drain_timeout = Float(30.0, config=True, help="Seconds to let runs finish on shutdown before cancelling them.")
    event_bus_url = Unicode("memory://", config=True, help="Event broker URL (memory:// is in-process).")
    trigger_lease_seconds = Float(30.0, config=True, help="How long a firing keeps other servers off a trigger.")
    trigger_refresh_seconds = Float(10.0, config=True,
                                    help="How often trigger definitions changed by other processes are re-read.")
    trigger_rate_limit = Int(60, config=True,
                             help="Firings a condition trigger may make per minute; more matches are dropped, the "
                                  "first one recorded as a suppressed firing (0: no limit).")
    catalog_refresh_seconds = Float(2.0, config=True,
                                    help="How long resources read from the database are served from memory "
                                         "(changes by other processes show after at most this long).")
    live_heartbeat_seconds = Float(10.0, config=True,
                                   help="How often live views are told the last event number, so a page whose "
                                        "connection dropped notices what it missed.")

    def initialize_settings(self) -> None:
        options = ServerOptions(max_concurrent_runs=self.max_concurrent_runs, drain_timeout=self.drain_timeout,
                                event_bus_url=self.event_bus_url, trigger_lease_seconds=self.trigger_lease_seconds,
                                trigger_refresh_seconds=self.trigger_refresh_seconds,
                                catalog_refresh_seconds=self.catalog_refresh_seconds,
                                trigger_rate_limit=self.trigger_rate_limit)
        self.services = Services(get_settings(), options)
        self.settings["flowdapt_services"] = self.services
        self._saved_env: dict[str, str | None] = {}
        LiveUpdates.register_schema(self.serverapp.event_logger)
        self.live = LiveUpdates(self.serverapp.event_logger, self.services.bus, self.live_heartbeat_seconds)
        self.services.resource_listeners.append(self.live.resource_changed)

    def initialize_handlers(self) -> None:
        from flowdapt.dashboard.jupyter import dashboard_routes

        self.handlers.extend(ROUTES)
        self.handlers.extend(dashboard_routes())  # the run-history dashboard at flowdapt/dashboard/

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        root = os.path.abspath(os.path.expanduser(serverapp.root_dir))
        set_workbench_root(root)  # notebook targets are read against it and confined to it
        proxy = serverapp.extension_manager.extensions.get("jupyter_server_proxy")
        self.services.proxy_dashboards = proxy is not None and proxy.enabled
        await self.services.start()
        self.live.start()
        url, token = serverapp.connection_url, serverapp.identity_provider.token or ""
        self._saved_env = {name: os.environ.get(name) for name in KERNEL_ENV}
        # Inherited by the kernels the server starts.
        os.environ.update({"FLOWDAPT_URL": url, "FLOWDAPT_TOKEN": token,
                           "FLOWDAPT_APP_DIR": str(self.services.settings.app_dir)})
        write_runtime_file(self.services.settings.app_dir, url, token)
        self.log.info("flowdapt services running; REST API at %s", url_path_join(url, "flowdapt/api/v1/"))

    async def stop_extension(self) -> None:
        remove_runtime_file(self.services.settings.app_dir)
        await self.live.stop()
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        await self.services.stop()
        set_workbench_root(None)


class HeadlessFlowdaptApp(FlowdaptApp):
    """``flowdapt serve``: the same services, without JupyterLab or other server extensions."""

    load_other_extensions = False
