"""Links to the dashboards of the cluster executors this server runs (Dask's, Ray's).

A local cluster's dashboard listens on ``127.0.0.1``, which a browser elsewhere cannot reach: where
jupyter-server-proxy is loaded, the link is its route ``proxy/<port>/<path>`` under the server's base
URL, behind Jupyter's authentication. Remote dashboards keep their own address.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "0.0.0.0", "::1", None})


def dashboard_link(kind: str, link: str, proxy: bool) -> dict[str, Any]:
    """``{kind, url, proxied, target}``: ``url`` is relative to the base URL when ``proxied``."""
    parsed = urlparse(link if "://" in link else f"http://{link}")
    proxied = proxy and parsed.hostname in LOCAL_HOSTS and parsed.port is not None
    # Ray's dashboard is a single-page app: its folder URL needs the trailing slash.
    url = f"proxy/{parsed.port}/{parsed.path.strip('/')}" if proxied else link
    return {"kind": kind, "url": url, "proxied": proxied, "target": link}


def executor_dashboards(proxy: bool) -> list[dict[str, Any]]:
    """The dashboards of the running shared executors (blocking: asks each cluster)."""
    from flowdapt.compute.executors import running_executors

    found = []
    for executor in running_executors():
        link = executor.describe().get("dashboard_link")
        if link:
            found.append(dashboard_link(executor.kind, link, proxy))
    return found
