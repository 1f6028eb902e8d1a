"""Interceptor configurations: the JSON shape, scopes, and one-line errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from kgateway.interceptors.api import ClientInfo, InvalidConfig
from kgateway.interceptors.options import Options
from kgateway.interceptors.spec import InterceptorSpec, Scope


class SpecTests(SynchronousTestCase):
    def test_round_trip(self) -> None:
        """What is stored decodes to the same spec; defaults are filled in."""
        spec = InterceptorSpec.parse({"name": "acks", "plugin": "produce-policy"})
        self.assertEqual(spec.priority, 100)
        self.assertEqual(spec.scope, Scope())
        self.assertEqual(InterceptorSpec.decode(spec.encode()), spec)
        self.assertEqual(
            spec.to_json(),
            {
                "name": "acks",
                "plugin": "produce-policy",
                "priority": 100,
                "config": {},
                "scope": "global",
            },
        )

    def test_name_from_url(self) -> None:
        """The URL's name fills in a body without one, and must agree with a body that has one."""
        self.assertEqual(InterceptorSpec.parse({"plugin": "p"}, name="from-url").name, "from-url")
        with self.assertRaises(InvalidConfig) as e:
            InterceptorSpec.parse({"name": "a", "plugin": "p"}, name="b")
        self.assertIn("URL names 'b'", str(e.exception))

    def test_bad_shapes(self) -> None:
        """Each mistake gets its own one-line reason."""
        cases = {
            "an interceptor is a JSON object": [],
            "unknown field(s) colour": {"name": "a", "plugin": "p", "colour": 1},
            "name must be": {"name": "has space", "plugin": "p"},
            "plugin must name": {"name": "a"},
            "priority must be an integer": {"name": "a", "plugin": "p", "priority": True},
            "config must be a JSON object": {"name": "a", "plugin": "p", "config": [1]},
            "scope must be": {"name": "a", "plugin": "p", "scope": "everyone"},
            "not more": {"name": "a", "plugin": "p", "scope": {"clientId": "x", "username": "y"}},
            "is not a regular expression": {"name": "a", "plugin": "p", "scope": {"clientId": "("}},
        }
        for expected, raw in cases.items():
            with self.assertRaises(InvalidConfig) as e:
                InterceptorSpec.parse(raw)
            self.assertIn(expected, str(e.exception))
            self.assertNotIn("\n", str(e.exception))

    def test_not_json(self) -> None:
        with self.assertRaises(InvalidConfig):
            InterceptorSpec.decode(b"{nope")


class ScopeTests(SynchronousTestCase):
    def test_client_id_pattern_matches_whole_id(self) -> None:
        scope = Scope.parse({"clientId": "app-[0-9]+"})
        self.assertTrue(scope.applies_to(ClientInfo("h:1", 1, client_id="app-12")))
        self.assertFalse(scope.applies_to(ClientInfo("h:1", 1, client_id="app-12-extra")))
        self.assertFalse(scope.applies_to(ClientInfo("h:1", 1, client_id=None)))

    def test_username(self) -> None:
        scope = Scope.parse({"username": "alice"})
        self.assertTrue(scope.applies_to(ClientInfo("h:1", 1, username="alice")))
        self.assertFalse(scope.applies_to(ClientInfo("h:1", 1, username=None)))
        self.assertEqual(scope.to_json(), {"username": "alice"})

    def test_global(self) -> None:
        self.assertTrue(Scope.parse("global").applies_to(ClientInfo("h:1", 1)))


class OptionsTests(SynchronousTestCase):
    def test_reads_and_defaults(self) -> None:
        options = Options({"max": 3, "rate": 0.5, "on": True, "names": ["a"], "re": "t-.*"})
        self.assertEqual(options.integer("max", minimum=1), 3)
        self.assertEqual(options.number("rate", maximum=1), 0.5)
        self.assertTrue(options.boolean("on"))
        self.assertEqual(options.strings("names"), ["a"])
        self.assertTrue(options.pattern("re").fullmatch("t-1"))
        self.assertIsNone(options.integer("absent", None))
        options.done()

    def test_errors(self) -> None:
        cases: list[tuple[Callable[[Options], object], dict[str, Any], str]] = [
            (lambda o: o.integer("n", minimum=1), {"n": 0}, "config.n must be >= 1, got 0"),
            (lambda o: o.integer("n"), {"n": "ten"}, "config.n must be an integer, got 'ten'"),
            (lambda o: o.integer("n"), {}, "config.n is required"),
            (lambda o: o.number("r", maximum=1), {"r": 2}, "config.r must be <= 1, got 2"),
            (lambda o: o.boolean("b"), {"b": "yes"}, "config.b must be true or false"),
            (lambda o: o.string("s", choices=("x",)), {"s": "y"}, "must be one of x"),
            (lambda o: o.strings("l", choices=("x",)), {"l": ["y"]}, "config.l has 'y'"),
            (lambda o: o.pattern("p"), {"p": "("}, "is not a regular expression"),
            (lambda o: o.mapping("m"), {"m": {"a": 1}}, "must be an object of strings"),
        ]
        for read, config, expected in cases:
            with self.assertRaises(InvalidConfig) as e:
                read(Options(config))
            self.assertIn(expected, str(e.exception))

    def test_unknown_keys(self) -> None:
        options = Options({"maxPartitons": 3})
        options.integer("maxPartitions", None)
        with self.assertRaises(InvalidConfig) as e:
            options.done()
        self.assertEqual(
            str(e.exception), "unknown config key(s) maxPartitons; known: maxPartitions"
        )


class PrincipalScopeTests(SynchronousTestCase):
    """{"principal": subject or regex}: a TLS client certificate's subject."""

    def client(self, principal: str | None) -> ClientInfo:
        return ClientInfo("10.0.0.7:5000", 1, principal=principal)

    def test_exact_subject(self) -> None:
        scope = Scope.parse({"principal": "CN=app-1,O=acme"})
        self.assertTrue(scope.applies_to(self.client("CN=app-1,O=acme")))
        self.assertFalse(scope.applies_to(self.client("CN=app-10,O=acme")))
        self.assertFalse(scope.applies_to(self.client(None)))
        self.assertEqual(scope.to_json(), {"principal": "CN=app-1,O=acme"})

    def test_regex_matches_the_whole_subject(self) -> None:
        scope = Scope.parse({"principal": "CN=app-[0-9]+,O=acme"})
        self.assertTrue(scope.applies_to(self.client("CN=app-12,O=acme")))
        self.assertFalse(scope.applies_to(self.client("CN=app-12,O=acme,C=DE")))

    def test_subject_with_regex_characters_matches_itself(self) -> None:
        subject = "CN=a+UID=1\\,2,O=(acme"
        scope = Scope.parse({"principal": subject})
        self.assertTrue(scope.applies_to(self.client(subject)))

    def test_bad_shapes(self) -> None:
        for raw in ({"principal": ""}, {"principal": 3}, {"principal": "x", "clientId": "y"}):
            with self.assertRaises(InvalidConfig):
                Scope.parse(raw)
