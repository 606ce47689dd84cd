"""The shared cluster tests (``tests/cluster_cases.py``) on clusters started elsewhere: collected only when
``tests/test_external_clusters.py`` runs them with ``FLOWDAPT_TEST_EXECUTORS`` naming the clusters."""

from __future__ import annotations

import pytest

from tests.cluster_cases import *  # noqa: F401,F403 - the shared tests run here on the external clusters
from tests.conftest import EXECUTORS, SELECTED


@pytest.fixture(scope="module", params=[name for name in SELECTED if name.endswith("-external")])
def cluster(request):
    executor = EXECUTORS[request.param]()
    executor.start()
    yield executor
    executor.close()
