"""A plugin object for interceptors written as a class: name, description, build."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from twisted.plugin import IPlugin
from zope.interface import implementer

from kgateway.interceptors.api import IInterceptor, IInterceptorPlugin, InterceptorContext


@implementer(IPlugin, IInterceptorPlugin)
@dataclass(frozen=True)
class InterceptorPlugin:
    """
    What a module in C{kgateway.plugins} exposes, one per kind of interceptor::

        produce_policy = InterceptorPlugin("produce-policy", "...", ProducePolicy.from_config)
    """

    name: str
    description: str
    factory: Callable[[Mapping[str, Any], InterceptorContext], IInterceptor]

    def build(self, config: Mapping[str, Any], context: InterceptorContext) -> IInterceptor:
        """Build an interceptor from C{config} (raises InvalidConfig when it is wrong)."""
        return self.factory(config, context)
