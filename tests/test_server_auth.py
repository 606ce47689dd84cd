"""The trust model under an authorizer that is not a plain token (JupyterHub's scopes and the like):
flowdapt's verbs that change anything run code, so they need ``execute`` on ``flowdapt``, not only ``write``."""

from __future__ import annotations

import pytest
from jupyter_server.auth.authorizer import Authorizer

from tests.flowdapt_server import error_of, jp_flowdapt, jp_flowdapt_api, workflow_doc  # noqa: F401 - fixtures

pytest_plugins = ("pytest_jupyter.jupyter_server",)


class ReadWriteWithoutExecute(Authorizer):
    """Grants everything but ``execute`` on ``flowdapt`` (e.g. a Hub role with read/write scopes only)."""

    def is_authorized(self, handler, user, action, resource) -> bool:
        return not (resource == "flowdapt" and action == "execute")


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"flowdapt": True},
                          "authorizer_class": ReadWriteWithoutExecute}}


@pytest.mark.parametrize("method, path, body", [
    ("POST", ("workflows",), workflow_doc("w")),
    ("POST", ("apply",), [workflow_doc("w")]),
    ("POST", ("workflows", "w", "run"), {}),
    ("POST", ("events",), {"type": "com.example.go"}),
    ("PUT", ("stage-modules", "w__s_0123456789ab"), {"source": "def s():\n    return 1\n"}),
    ("DELETE", ("workflows", "w"), None),
])
async def test_changing_anything_needs_the_execute_action(jp_flowdapt_api, method, path, body):
    code, error = await error_of(jp_flowdapt_api(method, *path, body=body))
    assert code == 403 and error["detail"] == "User is not authorized to execute on resource: flowdapt."


async def test_reading_needs_only_read(jp_flowdapt_api):
    assert (await jp_flowdapt_api("GET", "workflows"))[0] == 200
    assert (await jp_flowdapt_api("GET", "status"))[0] == 200
