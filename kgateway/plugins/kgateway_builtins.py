"""The built-in interceptor plugins, found like any other in kgateway.plugins."""

from kgateway.interceptors.builtin.client_id import ClientIdRequired
from kgateway.interceptors.plugin import InterceptorPlugin

client_id_required = InterceptorPlugin(
    "client-id-required",
    "Refuse requests whose client id is empty or does not match a pattern",
    ClientIdRequired.from_config,
)
