"""User patterns on RE2: linear time, whole-name matches, refusals that say why."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from kgateway.interceptors.api import ClientInfo, InvalidConfig
from kgateway.interceptors.options import Options
from kgateway.interceptors.patterns import MAX_PATTERN_LENGTH, compile_pattern
from kgateway.interceptors.spec import InterceptorSpec, Scope


class CompileTests(SynchronousTestCase):
    def refusal(self, pattern: str, setting: str = "scope.clientId") -> str:
        with self.assertRaises(InvalidConfig) as e:
            compile_pattern(pattern, setting)
        message = str(e.exception)
        self.assertNotIn("\n", message)
        self.assertTrue(message.startswith(f"{setting} {pattern!r} is not a regular expression"))
        return message

    def test_backreference_refused_with_the_reason(self) -> None:
        """Python's re takes a backreference; RE2 cannot run one in linear time: say so."""
        message = self.refusal(r"(a+)\1")
        self.assertIn(r"invalid escape sequence: \1", message)
        self.assertIn("linear", message)
        self.assertIn("backreferences", message)

    def test_lookaround_refused_with_the_reason(self) -> None:
        for pattern in ("(?=app).*", "app(?!-test).*", "(?<=x)y", "(?<!x)y"):
            message = self.refusal(pattern, "config.topics")
            self.assertIn("lookahead and lookbehind", message, pattern)

    def test_plain_syntax_error(self) -> None:
        """A broken pattern is named with RE2's reason, and no hint about features."""
        message = self.refusal("(")
        self.assertIn("missing )", message)
        self.assertNotIn("lookahead", message)

    def test_too_long(self) -> None:
        with self.assertRaises(InvalidConfig) as e:
            compile_pattern("a" * (MAX_PATTERN_LENGTH + 1), "config.pattern")
        self.assertIn(f"at most {MAX_PATTERN_LENGTH}", str(e.exception))

    def test_catastrophic_pattern_runs_linear(self) -> None:
        """(a+)+$ is accepted and answers at once (Python's re: 12.7 s at 28 characters)."""
        pattern = compile_pattern("(a+)+$", "scope.clientId")
        self.assertIsNone(pattern.fullmatch("a" * 5000 + "!"))
        self.assertIsNotNone(pattern.fullmatch("a" * 5000))
        self.assertEqual(pattern.pattern, "(a+)+$")

    def test_whole_name(self) -> None:
        """The docs promise whole-name matches: fullmatch, as before."""
        pattern = compile_pattern(r"orders\..*", "config.topics")
        self.assertIsNotNone(pattern.fullmatch("orders.eu"))
        self.assertIsNone(pattern.fullmatch("x-orders.eu"))
        self.assertIsNone(compile_pattern("app", "p").fullmatch("app-1"))
        self.assertIsNotNone(compile_pattern("é+", "p").fullmatch("éé"))


class WhereUsedTests(SynchronousTestCase):
    """Every user pattern goes through RE2: scopes and the built-ins' options."""

    def test_scope(self) -> None:
        with self.assertRaises(InvalidConfig) as e:
            InterceptorSpec.parse({"name": "a", "plugin": "p", "scope": {"clientId": r"(x)\1"}})
        self.assertIn("scope.clientId", str(e.exception))
        scope = Scope.parse({"clientId": "(a+)+$"})
        self.assertFalse(scope.applies_to(ClientInfo("h:1", 1, client_id="a" * 28 + "!")))
        self.assertTrue(scope.applies_to(ClientInfo("h:1", 1, client_id="a" * 28)))

    def test_options_pattern(self) -> None:
        with self.assertRaises(InvalidConfig) as e:
            Options({"namePattern": "(?=x)x"}).pattern("namePattern")
        self.assertIn("config.namePattern", str(e.exception))

    def test_builtins(self) -> None:
        """read-only-topics, header-injection, client-id-required, create-topic-policy."""
        from kgateway.interceptors.builtin.client_id import ClientIdRequired
        from kgateway.interceptors.builtin.create_topic_policy import CreateTopicPolicy
        from kgateway.interceptors.builtin.header_injection import HeaderInjection
        from kgateway.interceptors.builtin.read_only_topics import ReadOnlyTopics

        bad = r"(a)\1"
        cases: list[tuple[Any, dict[str, Any], str]] = [
            (ReadOnlyTopics, {"topics": ["ok", bad]}, "config.topics"),
            (HeaderInjection, {"headers": {"h": "v"}, "topics": bad}, "config.topics"),
            (ClientIdRequired, {"pattern": bad}, "config.pattern"),
            (CreateTopicPolicy, {"namePattern": bad}, "config.namePattern"),
        ]
        for plugin, config, setting in cases:
            with self.assertRaises(InvalidConfig) as e:
                plugin.from_config(config, None)
            self.assertIn(f"{setting} {bad!r} is not a regular expression", str(e.exception))
