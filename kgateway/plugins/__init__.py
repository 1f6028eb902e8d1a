"""
The package where kgateway looks for interceptor plugins.

A module here (or in a C{kgateway/plugins/} directory of any installed
distribution, see L{twisted.plugin.pluginPackagePaths}) that has objects
providing L{twisted.plugin.IPlugin} and
L{kgateway.interceptors.api.IInterceptorPlugin} adds interceptors.  Like
C{twisted/plugins}, it must stay free of an C{__init__.py} in other
distributions' copies; this one extends its path to find them.
"""

from twisted.plugin import pluginPackagePaths

__path__.extend(pluginPackagePaths(__name__))  # noqa: F821
__all__: list[str] = []
