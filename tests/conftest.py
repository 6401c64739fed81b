import pytest

from tests.harness import STACKS
from tools.render import render


@pytest.fixture(scope="session")
def rendered_stacks():
    """Each stack's real config file, run once through the real program under Pulumi's mocks."""
    return {stack: render(stack) for stack in STACKS}


def pytest_report_header(config):
    from tests.gotools import versions

    return f"monitoring tools: {versions()}"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    # Before any fixture of the test is set up, including the module- and session-scoped ones it is the first to use.
    # Imported here, not at the top: a mutant that breaks the settings' import must fail collection, not this file.
    from tests import services

    services.SERVERS_ALLOWED = item.get_closest_marker("server") is not None
