"""The built-in interceptor plugins, found like any other in kgateway.plugins."""

from kgateway.interceptors.builtin.chaos import Chaos
from kgateway.interceptors.builtin.client_id import ClientIdRequired
from kgateway.interceptors.builtin.header_injection import HeaderInjection
from kgateway.interceptors.builtin.rate_limit import RateLimit
from kgateway.interceptors.plugin import InterceptorPlugin

client_id_required = InterceptorPlugin(
    "client-id-required",
    "Refuse requests whose client id is empty or does not match a pattern",
    ClientIdRequired.from_config,
)

header_injection = InterceptorPlugin(
    "header-injection",
    "Add record headers (client id, host ...) to every record produced",
    HeaderInjection.from_config,
)

chaos = InterceptorPlugin(
    "chaos",
    "Add latency and answer some Produce/Fetch with broken-broker or leader-election errors",
    Chaos.from_config,
)

rate_limit = InterceptorPlugin(
    "rate-limit",
    "Throttle each client id's produce and consume bytes per second on this node",
    RateLimit.from_config,
)
