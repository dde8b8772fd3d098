"""Shared test set-up: a private FLOPs cache per test session, so tests never touch the user's cache."""

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("EDGENAS_CACHE_DIR", str(tmp_path_factory.mktemp("edgenas-cache")))
    yield
    mp.undo()
