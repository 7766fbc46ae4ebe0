import pytest

from eh_contracts.examples import SEED_EXAMPLES


@pytest.fixture(params=sorted(SEED_EXAMPLES))
def seed_example(request: pytest.FixtureRequest) -> dict:
    return SEED_EXAMPLES[request.param]
