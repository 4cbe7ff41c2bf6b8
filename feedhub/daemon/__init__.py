"""``feedhub run``: the scheduler, the pipeline and the HTTP server in one process.

Lifecycle (:mod:`.lifecycle`): open the store, HTTP client and server, start
the scheduler, then tell systemd ``READY=1``. ``SIGHUP`` reloads ``feeds.yaml``
(keeping the old configuration if the new one is invalid); ``SIGTERM``/``SIGINT``
stop scheduling, let running jobs and in-flight polls (:mod:`.polls`) finish
(bounded), give up the leases left, render what changed (:mod:`.publishing`;
waiting a few seconds at most for another node's render), stop the server and
close the store. The watchdog (:mod:`.watch`) is fed only while the store answers.
"""

from __future__ import annotations

from feedhub.config import load_config
from feedhub.daemon.lifecycle import Daemon, DaemonOptions
from feedhub.systemd import Notifier

__all__ = ["Daemon", "DaemonOptions", "run"]


async def run(options: DaemonOptions) -> None:
    """Load the configuration and run the daemon until it is stopped.

    Raises:
        ConfigError: the configuration is invalid at startup.
        FeedhubError: the store or the server cannot start.
    """
    config = load_config(options.config_path)
    await Daemon(config, options, Notifier()).run()
