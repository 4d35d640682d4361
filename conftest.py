"""Test tiers for the whole repository (loaded before collection, for tests/ and the library's doctests)."""

import pytest

# The integration tier: whole jobs, sweeps, the command line, several processes and subprocesses. The default run
# (scripts/test.sh, CI) runs every tier; `pytest -m "not integration"` is the fast tier (unit tests per module).
INTEGRATION_MODULES = {
    "test_cli", "test_sweeps", "test_train", "test_evaluate", "test_interrupt", "test_sharding", "test_readme",
    "test_download", "test_bench", "test_reliability", "test_bad_inputs",
}  # fmt: skip


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        module = getattr(item, "module", None)  # doctests have none: they are unit tests
        if module is not None and module.__name__.rpartition(".")[2] in INTEGRATION_MODULES:
            item.add_marker(pytest.mark.integration)
