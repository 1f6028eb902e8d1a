"""
kgateway's benchmark suite: ``python -m bench`` (``--smoke`` for a seconds-long run).

Throughput and latency with Kafka's Java perf tools and a librdkafka client, direct to a real
3-broker Kafka cluster, through one kgateway node, through three, and through the peer proxies
that can be installed; idle connection scale; proxy CPU per GiB; py-spy profiles. Every run is
proven (strace) to have gone through the target it is charged to. Results: ``bench/RESULTS.md``.
"""
