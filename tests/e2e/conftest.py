"""Fixtures of the llmq end-to-end suite.

- `server`: one session-wide llmq (slots 2, ctx-size 2048, queue-max 16, ping-interval-ms 200,
  threads 2) for the tests that need no special flags. Tests using it must leave it idle.
- `llmq_factory`: starts servers with given flags for one test, stops them after it.
- `elastic`: one session-wide Elasticsearch node (started on first use, ~20 s), with llmq's
  index templates installed by `llmq elastic setup`. Tests isolate their documents with
  `--elastic-namespace` (elastic_node.new_namespace()).

A missing binary or model fails every test with the reason (it never skips). When a test fails,
the stderr of each server it used is attached to its report.
"""

from __future__ import annotations

import pytest

from elastic_node import ElasticNode, elastic_setup
from llmq_e2e import LlmqServer, missing_prerequisites


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes more than ~15 s on 2 cores")


@pytest.fixture(scope="session", autouse=True)
def _prerequisites():
    """Fails (does not skip) every test when the binary or the model is missing."""
    problems = missing_prerequisites()
    if problems:
        pytest.fail("cannot run the llmq e2e suite:\n  " + "\n  ".join(problems), pytrace=False)


@pytest.fixture(scope="session")
def server(tmp_path_factory, _prerequisites):
    s = LlmqServer(tmp_path_factory.mktemp("llmq-logs"), name="session")
    try:
        s.start()
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="session")
def elastic(_prerequisites):
    node = ElasticNode()
    try:
        node.start()
        r = elastic_setup(node.url)
        assert r.returncode == 0, f"llmq elastic setup failed: {r.stderr}"
        yield node
    finally:
        node.remove()


class ServerFactory:
    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.servers: list[LlmqServer] = []

    def create(self, name: str = "llmq", *, env=None, args=None, port=None, **flags) -> LlmqServer:
        """A server, not started yet (see LlmqServer); stopped after the test."""
        s = LlmqServer(self.log_dir, flags, name=name, env=env, args=args, port=port)
        self.servers.append(s)
        return s

    def start(self, name: str = "llmq", *, env=None, args=None, port=None, **flags) -> LlmqServer:
        """Starts `llmq serve` with the suite's default flags overridden by `flags`
        (python names: ctx_size=512 -> --ctx-size 512) and waits until it is ready."""
        return self.create(name, env=env, args=args, port=port, **flags).start()

    def stop_all(self) -> None:
        for s in self.servers:
            s.stop()


@pytest.fixture
def llmq_factory(tmp_path, _prerequisites):
    f = ServerFactory(tmp_path)
    try:
        yield f
    finally:
        f.stop_all()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attaches the stderr of every server the test used to its report."""
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    servers = []
    for value in getattr(item, "funcargs", {}).values():
        if isinstance(value, LlmqServer):
            servers.append(value)
        elif isinstance(value, ServerFactory):
            servers.extend(value.servers)
    for s in servers:
        rep.sections.append(
            (f"llmq stderr ({s.name}, port {s.port}, last 200 lines)", s.stderr_text(200))
        )
