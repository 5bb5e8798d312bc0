"""The upload and quota races of test_races.py, against two real `pollux serve` nodes on one PostgreSQL
database behind a round-robin balancer: consecutive requests land on alternate nodes, so the session's
writer lock, the offset's compare-and-set and the quota's check-and-take must hold across processes."""

import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.fixtures.balancer import RoundRobin
from tests.fixtures.server import Server
from tests.reliability import test_races
from tests.reliability.test_races import QUOTA


@pytest.fixture(scope="module")
def server(tmp_path_factory, pg_cluster):
    url = pg_cluster.new_database("races")
    data = tmp_path_factory.mktemp("races-pg") / "data"
    nodes = [Server(data, env={"POLLUX_MAX_PROJECT_BYTES": str(QUOTA), "POLLUX_DATABASE_URL": url}) for _ in range(2)]
    before = os.environ.get("POLLUX_DATABASE_URL")
    os.environ["POLLUX_DATABASE_URL"] = url  # for tests/files/uploads.blob_bytes, which reads the metadata
    try:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(Server.start, nodes))
        balancer = RoundRobin([n.port for n in nodes]).start()
        balancer.data_dir = data
        yield balancer
        balancer.stop()
        assert min(balancer.served) > 10  # both nodes served a good share of the requests
    finally:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(Server.stop, nodes))
        if before is None:
            os.environ.pop("POLLUX_DATABASE_URL", None)
        else:
            os.environ["POLLUX_DATABASE_URL"] = before


for _name in ("test_two_chunks_at_the_same_offset_never_mix", "test_concurrent_finalize_calls_answer_one_file",
              "test_concurrent_resumable_uploads_cannot_overshoot_the_quota",
              "test_concurrent_one_shot_uploads_cannot_overshoot_the_quota", "test_a_name_another_project_holds_looks_free"):
    globals()[_name] = getattr(test_races, _name)
