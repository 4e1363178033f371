"""Fixtures: a real redis-server (or, with CHAT_TEST_REDIS=cluster, a real
three-master Redis Cluster) for the session, a clean database and the real
app on a real port for each test."""

import asyncio
import os

import pytest

from server.app import make_app, make_http_server, make_redis, make_storage
from server.cluster_redis import LocalCluster
from server.embedded_redis import EmbeddedRedis
from server.hub import Hub
from server.settings import Settings

from .apiclient import ApiClient
from .processes import RunningServer
from .redis_clients import redis_mode, sync_client


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """One redis-server (the same lookup as `run.py`) without persistence, or a
    local three-master cluster (its `redis+cluster://` URL) in cluster mode."""
    if redis_mode() == "cluster":
        server = LocalCluster(str(tmp_path_factory.mktemp("cluster")))
    else:
        server = EmbeddedRedis(str(tmp_path_factory.mktemp("redis")), "--appendonly", "no", "--save", "")
    url = server.start()
    yield url
    server.stop()


@pytest.fixture
def settings():
    # bcrypt's cheapest cost keeps the suite fast; the algorithm is the same.
    # Rate limits are off, as for any tool that drives the API: tests send
    # faster than people. tests/test_rate_limits.py turns them on.
    # CHAT_READ_CACHE_MB=0 runs the suite without the read cache (run.py
    # processes that tests start read the same variable).
    read_cache_mb = int(os.environ.get("CHAT_READ_CACHE_MB", Settings.read_cache_mb))
    return Settings(bcrypt_cost=4, rate_limits=False, read_cache_mb=read_cache_mb)


@pytest.fixture
def sync_redis(redis_url):
    """A plain client for looking at (and emptying) the database; on a cluster,
    its KEYS, FLUSHALL, PUBSUB NUMSUB, CLIENT and CONFIG act on every node."""
    with sync_client(redis_url) as client:
        client.flushall()
        yield client


@pytest.fixture
def redis_client(io_loop, redis_url, settings, sync_redis):
    client = make_redis(redis_url, settings)
    yield client
    io_loop.run_sync(client.aclose)


@pytest.fixture
def storage(io_loop, redis_client, settings):
    storage = make_storage(redis_client, settings)
    io_loop.run_sync(lambda: _start(storage))
    yield storage
    io_loop.run_sync(storage.stop)


async def _start(storage):
    """Loads the scripts, starts the event feed and waits until it is
    subscribed, as a server would."""
    await storage.prepare()
    await storage.upgrade()
    storage.start()
    while not storage.feed.connected:
        await asyncio.sleep(0.005)


@pytest.fixture
def hub(io_loop, storage):
    hub = Hub(storage)
    yield hub
    hub.close_all()
    io_loop.run_sync(hub.stop)


@pytest.fixture
def app(io_loop, settings, storage, hub):
    app = make_app(settings, storage, hub)
    yield app
    # Its sockets' claims in Redis are released before Redis goes (run.py does the same).
    io_loop.run_sync(app.settings["socket_limits"].stop)


@pytest.fixture
def http_server(io_loop, _unused_port, app, settings):
    """pytest-tornado's fixture, with the server options run.py uses."""
    server = make_http_server(app, settings)
    server.add_socket(_unused_port[0])
    yield server
    server.stop()
    io_loop.run_sync(server.close_all_connections)


@pytest.fixture
def new_client(http_client, base_url):
    """Makes API clients that share nothing (no cookies)."""
    return lambda: ApiClient(http_client, base_url)


@pytest.fixture
def make_user(new_client):
    """Registers a fresh user and returns their logged-in client."""

    async def make(name=None, **kw):
        client = new_client()
        response = await client.register(name, **kw)
        assert response.code == 201, response
        return client

    return make


@pytest.fixture
def two_servers(redis_url, sync_redis, tmp_path):
    """Two `run.py` processes on the test Redis (the cluster, in cluster mode)."""
    servers = []
    try:
        for _ in range(2):
            servers.append(RunningServer("--redis-url", redis_url, "--data-dir", str(tmp_path), "--rate-limits", "off"))
        yield servers
    finally:
        codes = [server.stop() for server in servers]
    assert codes == [0, 0]
