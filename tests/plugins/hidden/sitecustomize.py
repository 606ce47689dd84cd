"""Put on ``PYTHONPATH`` of the cluster processes that ``tests/test_plugins_clusters.py`` starts: their
interpreters do not see the example plugin that the test environment has installed (its editable install
puts its source folder on every interpreter's ``sys.path``), as a remote cluster's workers would not."""

import sys

sys.path[:] = [entry for entry in sys.path if "flowdapt-example-plugin" not in entry]
