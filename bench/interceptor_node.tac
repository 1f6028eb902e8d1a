# A kgateway node for `python -m bench --interceptors`, run as `twistd -n -y`:
# the same service `twistd kgateway` builds, with the interceptors in
# KGATEWAY_BENCH_INTERCEPTORS (a JSON list of {name, plugin, priority, config,
# scope}) applied before it starts, so the benchmark does not depend on the
# admin API's interceptor store.
import json
import os

from twisted.application.service import Application

from kgateway.interceptors.spec import InterceptorSpec
from kgateway.tap import Options, makeService

options = Options()
options.parseOptions([])
node = makeService(options)
node.interceptors.apply(
    InterceptorSpec.parse(raw) for raw in json.loads(os.environ["KGATEWAY_BENCH_INTERCEPTORS"])
)
application = Application("kgateway")
node.setServiceParent(application)
