"""Ask a gateway (or a broker) for metadata over a socket (TLS if asked): what would a client
be told?"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct

from kafka.protocol.metadata import MetadataRequest, MetadataResponse

_VERSION = 12


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    """Read exactly C{size} bytes from a blocking socket."""
    chunks = []
    while size:
        chunk = sock.recv(size)
        if not chunk:
            raise ConnectionError("connection closed mid-response")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def advertised_brokers(
    host: str,
    port: int,
    timeout: float = 5.0,
    client_id: str = "kgateway-probe",
    tls: ssl.SSLContext | None = None,
) -> dict[int, tuple[str, int]]:
    """The broker id → (host, port) map a Metadata request to C{host:port} returns.

    With C{tls} the request goes over TLS, the server's name checked against C{host}.
    """
    request = MetadataRequest[_VERSION](topics=[], allow_auto_topic_creation=False)
    request.with_header(correlation_id=1, client_id=client_id)
    with contextlib.ExitStack() as stack:
        sock = stack.enter_context(socket.create_connection((host, port), timeout=timeout))
        if tls is not None:
            sock = stack.enter_context(tls.wrap_socket(sock, server_hostname=host))
        sock.sendall(request.encode(header=True, framed=True))
        (size,) = struct.unpack(">i", recv_exactly(sock, 4))
        payload = recv_exactly(sock, size)
    response = MetadataResponse.decode(payload, version=_VERSION, header=True)
    return {b.node_id: (b.host, b.port) for b in response.brokers}
