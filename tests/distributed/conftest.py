"""One 2-process gloo launch shared by the distributed tests (start-up and imports cost most)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def two_rank_dir(tmp_path_factory, window_cache):
    import distributed_workers as W
    from augframe.distributed import launch

    workdir = tmp_path_factory.mktemp("two_rank")
    launch(W.two_rank_all, 2, str(workdir), W.CACHE["path"])
    return workdir


@pytest.fixture(scope="session", autouse=True)
def window_cache(tmp_path_factory):
    """Real CinC 2017 demo windows in the data layer's memmap cache: what the training tests read."""
    import distributed_workers as W

    return W.build_window_cache(tmp_path_factory.mktemp("cache"))
