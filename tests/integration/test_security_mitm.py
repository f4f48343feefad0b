"""Someone in the middle: a fake controller with its own CA gets nothing from an agent whose join token
pins the real CA (no Register, not the secret in any form, and the token is not burned), and the
real controller speaks TLS only, verified against its own CA."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
from dstack_hybrid.shared.ca_discovery import CONTROLLER_SAN
from dstack_hybrid.shared.certs import cert_fingerprint
from dstack_hybrid.shared.tokens import parse_token
from dstack_hybrid.v1 import hybrid_pb2 as pb
from dstack_hybrid.v1 import hybrid_pb2_grpc as pb_grpc

from controller.pki.ca import CertificateAuthority, issue_server_certificate, load_or_create_ca
from tests.integration.conftest import Cluster
from tests.support.cluster import AgentProcess, ControllerProcess, wait_for

pytestmark = pytest.mark.docker

RPC_TIMEOUT_S = 10.0
# Files the agent writes only once a controller it trusts has answered.
CREDENTIAL_FILES = ("credential.json", "host.crt", "ca.crt")


class WireTap:
    """A TCP relay on loopback in front of the fake controller that keeps every byte clients send,
    so "never saw the secret" covers the wire too, not only what reaches a gRPC handler."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.lock = threading.Lock()
        self.received = bytearray()
        self.connections = 0
        self.sockets: list[socket.socket] = []
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._accept, name="wiretap-accept", daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self.lock:
                self.connections += 1
                self.sockets += [client, upstream]
            for src, dst, keep in ((client, upstream, True), (upstream, client, False)):
                thread = threading.Thread(target=self._pump, args=(src, dst, keep), name="wiretap-pump", daemon=True)
                self.threads.append(thread)
                thread.start()

    def _pump(self, src: socket.socket, dst: socket.socket, keep: bool) -> None:
        try:
            while data := src.recv(65536):
                if keep:
                    with self.lock:
                        self.received += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def reset(self) -> None:
        with self.lock:
            self.received.clear()
            self.connections = 0

    def close(self) -> None:
        self.stopping.set()
        self.listener.close()
        with self.lock:
            for s in self.sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
        for thread in self.threads:
            thread.join(timeout=5)


class RecordingAgentService(pb_grpc.AgentServiceServicer):
    def __init__(self) -> None:
        self.registers: list[pb.RegisterRequest] = []

    def Register(self, request: pb.RegisterRequest, context: grpc.ServicerContext) -> pb.RegisterResponse:
        self.registers.append(request)
        # Refused, so an agent that wrongly got this far exits at once and the assertions say why.
        context.abort(grpc.StatusCode.UNAUTHENTICATED, "fake controller")
        raise AssertionError("unreachable")


class RecordingInterceptor(grpc.ServerInterceptor):
    """Every call that reaches the fake, whatever its method, with its metadata."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[tuple[str, Any], ...]]] = []

    def intercept_service(self, continuation: Any, handler_call_details: grpc.HandlerCallDetails) -> Any:
        metadata = tuple((m.key, m.value) for m in handler_call_details.invocation_metadata or ())  # type: ignore[attr-defined]
        self.calls.append((handler_call_details.method, metadata))
        return continuation(handler_call_details)


class FakeController:
    """A gRPC server on loopback with its OWN CA, a certificate naming what the controller's names, and
    AgentService.Register recording every request; clients reach it through a WireTap (`address`)."""

    def __init__(self, directory: Path, extra_chain: bytes = b"") -> None:
        self.ca: CertificateAuthority = load_or_create_ca(directory, common_name="fake controller CA")[0]
        cert, key = issue_server_certificate(self.ca, [CONTROLLER_SAN, "localhost"], ["127.0.0.1"])
        # The chain the real controller presents (certificate + CA), or whatever extra an impostor adds.
        chain = cert + (extra_chain or self.ca.cert_pem)
        self.service = RecordingAgentService()
        self.interceptor = RecordingInterceptor()
        self.server = grpc.server(ThreadPoolExecutor(max_workers=4), interceptors=[self.interceptor])
        pb_grpc.add_AgentServiceServicer_to_server(self.service, self.server)
        port = self.server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key, chain)]))
        assert port, "cannot listen on loopback"
        self.server.start()
        self.tap = WireTap(port)
        self.address = self.tap.address

    def self_check(self) -> None:
        """A client that trusts the fake CA does get through and is recorded: an empty record later
        means the agent sent nothing, not that the recorder is blind."""
        creds = grpc.ssl_channel_credentials(root_certificates=self.ca.cert_pem)
        options = [("grpc.ssl_target_name_override", CONTROLLER_SAN)]
        secret = "self-check-secret-0123456789"
        token = f"dstack1.{self.ca.fingerprint}.selfchk.{secret}"
        with grpc.secure_channel(self.address, creds, options=options) as channel:
            with pytest.raises(grpc.RpcError) as err:
                pb_grpc.AgentServiceStub(channel).Register(pb.RegisterRequest(join_token=token), timeout=RPC_TIMEOUT_S)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert [r.join_token for r in self.service.registers] == [token]
        assert [c[0] for c in self.interceptor.calls] == ["/dstack_hybrid.v1.AgentService/Register"]
        assert self.tap.connections >= 1
        self.reset()

    def reset(self) -> None:
        self.service.registers.clear()
        self.interceptor.calls.clear()
        self.tap.reset()

    def saw(self, text: str) -> bool:
        """Whether `text` reached the fake in any form: on the wire, in a request or in call metadata."""
        needle = text.encode()
        with self.tap.lock:
            if needle in self.tap.received:
                return True
        if any(needle in r.SerializeToString() for r in self.service.registers):
            return True
        return any(text in str(value) for _, metadata in self.interceptor.calls for _, value in metadata)

    def close(self) -> None:
        self.tap.close()
        self.server.stop(None).wait(10)


@pytest.fixture
def fakes() -> Iterator[list[FakeController]]:
    started: list[FakeController] = []
    yield started
    for fake in started:
        fake.close()


@pytest.fixture
def agents() -> Iterator[list[AgentProcess]]:
    started: list[AgentProcess] = []
    yield started
    for agent in started:
        agent.stop()


def fake_controller(fakes: list[FakeController], directory: Path, extra_chain: bytes = b"") -> FakeController:
    fake = FakeController(directory, extra_chain)
    fakes.append(fake)
    fake.self_check()
    return fake


def agent_for(
    agents: list[AgentProcess], controller: ControllerProcess, state_dir: Path, token: str, name: str, address: str
) -> AgentProcess:
    """A real `dstack-agent run`, its --controller pointed at `address`."""
    agent = AgentProcess(controller, state_dir, token, name)
    i = agent.args.index("--controller")
    assert agent.args[i + 1] == controller.address
    agent.args[i + 1] = address
    agents.append(agent)
    return agent


def credential_files(state_dir: Path) -> list[str]:
    return [name for name in CREDENTIAL_FILES if (state_dir / name).exists()]


def test_wrong_ca_fingerprint_is_refused_before_the_secret_is_sent(
    cluster: Cluster, tmp_path: Path, fakes: list[FakeController], agents: list[AgentProcess]
) -> None:
    fake = fake_controller(fakes, tmp_path / "fake-pki")
    token = cluster.controller.token()
    parsed = parse_token(token)
    assert parsed.ca_fingerprint == cert_fingerprint(cluster.controller.ca_file.read_bytes())  # pins the REAL CA
    assert parsed.ca_fingerprint != fake.ca.fingerprint

    state_dir = tmp_path / "mitm"
    agent = agent_for(agents, cluster.controller, state_dir, token, "mitm", fake.address)
    agent.start()
    assert agent.proc is not None
    assert agent.proc.wait(timeout=60) == 1
    log = agent.log()
    assert f"the controller at {fake.address} presents" in log
    assert f"not the CA sha256 {parsed.ca_fingerprint[:16]}" in log
    assert fake.ca.fingerprint[:16] in log  # what it did see
    assert "refusing to send the join token" in log
    assert "Traceback" not in log
    assert parsed.secret not in log

    assert fake.tap.connections >= 1, "the agent never dialled the fake controller: the test proves nothing"
    assert fake.service.registers == []
    assert fake.interceptor.calls == []
    assert not fake.saw(parsed.secret)
    assert not fake.saw(token)
    assert credential_files(state_dir) == []
    assert "mitm" not in [h["name"] for h in cluster.controller.ctl_json("hosts")]

    # The token was not burned: the real controller still takes it.
    honest = agent_for(
        agents, cluster.controller, tmp_path / "after-mitm", token, "after-mitm", cluster.controller.address
    )
    honest.start_and_wait_online()
    assert credential_files(tmp_path / "after-mitm") == list(CREDENTIAL_FILES)
    honest.stop()


def test_a_fake_presenting_a_copy_of_the_real_ca_still_never_gets_the_secret(
    cluster: Cluster, tmp_path: Path, fakes: list[FakeController], agents: list[AgentProcess]
) -> None:
    """The real CA certificate is public: an impostor can put it in its chain and pass discovery, but
    not the verified handshake that comes before the token is sent. The agent keeps retrying."""
    real_ca = cluster.controller.ca_file.read_bytes()
    fake = fake_controller(fakes, tmp_path / "fake-pki", extra_chain=real_ca)
    token = cluster.controller.token()
    secret = parse_token(token).secret
    state_dir = tmp_path / "copycat"
    agent = agent_for(agents, cluster.controller, state_dir, token, "copycat", fake.address)
    agent.start()
    wait_for(
        "the agent to fail the verified handshake",
        lambda: f"cannot register with {fake.address}" in agent.log() or not agent.running,
        timeout=60,
    )
    log = agent.log()
    assert agent.running, log  # a failed handshake is retried, like a network failure
    assert "refusing to send the join token" not in log  # the pinned CA was found...
    assert "CERTIFICATE_VERIFY_FAILED" in log  # ...but the fake's certificate does not chain to it
    assert fake.tap.connections >= 2  # the unverified probe, then the gRPC channel that was turned down
    assert fake.service.registers == []
    assert fake.interceptor.calls == []
    assert not fake.saw(secret)
    assert not fake.saw(token)
    agent.stop()
    assert credential_files(state_dir) == []
    assert not fake.saw(secret)


# -- the real controller speaks TLS only -----------------------------------------------------------


def list_hosts(address: str, credentials: grpc.ChannelCredentials | None, admin_token: str) -> list[str]:
    if credentials is None:
        channel = grpc.insecure_channel(address)
    else:
        channel = grpc.secure_channel(address, credentials, options=[("grpc.ssl_target_name_override", CONTROLLER_SAN)])
    with channel:
        resp = pb_grpc.ClientServiceStub(channel).ListHosts(
            pb.ListHostsRequest(), metadata=(("authorization", f"Bearer {admin_token}"),), timeout=RPC_TIMEOUT_S
        )
    return [h.name for h in resp.hosts]


def rpc_code(address: str, credentials: grpc.ChannelCredentials | None, admin_token: str) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as err:
        list_hosts(address, credentials, admin_token)
    return err.value.code()


def test_the_controller_refuses_plaintext(cluster: Cluster) -> None:
    c = cluster.controller
    assert rpc_code(c.address, None, c.admin_token) == grpc.StatusCode.UNAVAILABLE
    assert rpc_code(f"127.0.0.1:{c.agent_port}", None, c.admin_token) == grpc.StatusCode.UNAVAILABLE


def test_the_controller_is_verified_against_its_own_ca_only(cluster: Cluster, tmp_path: Path) -> None:
    c = cluster.controller
    other = load_or_create_ca(tmp_path / "other-ca")[0]
    assert rpc_code(c.address, grpc.ssl_channel_credentials(other.cert_pem), c.admin_token) == (
        grpc.StatusCode.UNAVAILABLE
    )
    # The same call trusting the real CA goes through: the refusal above is the CA's doing.
    assert "local" in list_hosts(c.address, grpc.ssl_channel_credentials(c.ca_file.read_bytes()), c.admin_token)


def test_the_agent_port_wants_a_host_certificate(cluster: Cluster) -> None:
    c = cluster.controller
    address = f"127.0.0.1:{c.agent_port}"
    real_ca = c.ca_file.read_bytes()
    assert rpc_code(address, grpc.ssl_channel_credentials(real_ca), c.admin_token) == grpc.StatusCode.UNAVAILABLE
    host_dir = cluster.agent.state_dir
    with_cert = grpc.ssl_channel_credentials(
        real_ca, (host_dir / "host.key").read_bytes(), (host_dir / "host.crt").read_bytes()
    )
    # With the host's certificate the handshake succeeds: the call is turned down for its missing API token.
    assert rpc_code(address, with_cert, "") == grpc.StatusCode.UNAUTHENTICATED
