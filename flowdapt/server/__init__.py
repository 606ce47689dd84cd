"""The flowdapt Jupyter server extension: compute, trigger and event services behind a REST API.

The extension app lives in :mod:`flowdapt.server.app` (importing this package does not import
Jupyter, so clients can read :mod:`flowdapt.server.runtime` without it).
"""
