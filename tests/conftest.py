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
