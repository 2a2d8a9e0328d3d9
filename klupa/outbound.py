"""Outgoing HTTP requests that carry credentials (the gateway's sinks, alert webhooks).

A redirect is not followed: urllib's redirect handler sends the request's headers on to
wherever the 3xx points, another host or plain ``http://`` included, so the portal's token,
InfluxDB's password or a webhook's token would go with it, and a POST comes back as a GET. Here
a 3xx is answered as the ``HTTPError`` it is, and the caller says what to do with it.
"""

from __future__ import annotations

import urllib.request
from typing import Any


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


OPENER = urllib.request.build_opener(_NoRedirects)
