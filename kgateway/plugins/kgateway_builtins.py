"""The built-in interceptor plugins, found like any other in kgateway.plugins."""

from kgateway.interceptors.builtin.audit_log import AuditLog
from kgateway.interceptors.builtin.chaos import Chaos
from kgateway.interceptors.builtin.client_id import ClientIdRequired
from kgateway.interceptors.builtin.create_topic_policy import CreateTopicPolicy
from kgateway.interceptors.builtin.header_injection import HeaderInjection
from kgateway.interceptors.builtin.produce_policy import ProducePolicy
from kgateway.interceptors.builtin.rate_limit import RateLimit
from kgateway.interceptors.builtin.read_only_topics import ReadOnlyTopics
from kgateway.interceptors.plugin import InterceptorPlugin

client_id_required = InterceptorPlugin(
    "client-id-required",
    "Refuse requests whose client id is empty or does not match a pattern",
    ClientIdRequired.from_config,
)
create_topic_policy = InterceptorPlugin(
    "create-topic-policy",
    "Limit new topics' partitions, replication factor and names, topic by topic",
    CreateTopicPolicy.from_config,
)
produce_policy = InterceptorPlugin(
    "produce-policy",
    "Require acks, compression codecs, idempotent or transactional producers",
    ProducePolicy.from_config,
)
read_only_topics = InterceptorPlugin(
    "read-only-topics",
    "Refuse produce, delete and config changes on topics matching patterns; reads pass",
    ReadOnlyTopics.from_config,
)
audit_log = InterceptorPlugin(
    "audit-log",
    "Write every interceptor's policy decision as a JSON record to a Kafka topic",
    AuditLog.from_config,
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
