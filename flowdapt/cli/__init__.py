"""The ``flowctl`` and ``flowdapt`` command lines."""
