"""Reading sasl.jaas.config as Kafka's clients do, and refusing what they would refuse."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from kgateway.security.jaas import JaasEntry, parse_jaas
from kgateway.setting import ConfigError

NAME = "KAFKA_SASL_JAAS_CONFIG"
SECRET = "canary-s3cret"
EXAMPLE = (
    "write it as org.apache.kafka.common.security.scram.ScramLoginModule required "
    'username="..." password="...";'
)


class ParseTests(SynchronousTestCase):
    def test_scram(self) -> None:
        entry = parse_jaas(
            NAME,
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="alice" password="{SECRET}";',
        )
        self.assertEqual(entry.module, "org.apache.kafka.common.security.scram.ScramLoginModule")
        self.assertEqual(entry.flag, "required")
        self.assertEqual(entry.options, {"username": "alice", "password": SECRET})
        self.assertNotIn(SECRET, repr(entry))

    def test_quotes_escapes_words_comments(self) -> None:
        """Single quotes, backslash escapes, bare words, comments and line breaks."""
        entry = parse_jaas(
            NAME,
            "/* the gateway */ org.example.Module REQUIRED\n"
            '  a=\'it is\' b="say \\"hi\\"\\n" c=plain-word_1.2 // trailing\n'
            '  d="semi;colon=" ;',
        )
        self.assertEqual(entry.flag, "required")
        self.assertEqual(
            entry.options,
            {"a": "it is", "b": 'say "hi"\n', "c": "plain-word_1.2", "d": "semi;colon="},
        )

    def test_no_options(self) -> None:
        self.assertEqual(parse_jaas(NAME, "x.Y optional;"), JaasEntry("x.Y", "optional", {}))


class RefusalTests(SynchronousTestCase):
    def refused(self, text: str) -> str:
        error = self.assertRaises(ConfigError, parse_jaas, NAME, text)
        message = str(error)
        self.assertNotIn(SECRET, message)
        self.assertNotIn("\n", message)
        return message

    def test_missing_semicolon(self) -> None:
        self.assertEqual(
            self.refused(f'x.Y required username="alice" password="{SECRET}"'),
            f"{NAME} cannot be read: expected an option name or ';', but the text ends at "
            f"character 55; {EXAMPLE}",
        )

    def test_missing_equals(self) -> None:
        self.assertEqual(
            self.refused(f'x.Y required username "{SECRET}";'),
            f"{NAME} cannot be read: expected '=' after option username at character 23; "
            + EXAMPLE,
        )

    def test_unclosed_quote(self) -> None:
        self.assertEqual(
            self.refused(f'x.Y required password="{SECRET};'),
            f"{NAME} cannot be read: expected a quoted value that is never closed at character "
            f"23; {EXAMPLE}",
        )

    def test_bad_flag(self) -> None:
        self.assertEqual(
            self.refused(f'x.Y needed password="{SECRET}";'),
            f"{NAME} cannot be read: expected a control flag (required, requisite, sufficient "
            f"or optional) at character 5; {EXAMPLE}",
        )

    def test_stray_character(self) -> None:
        self.assertEqual(
            self.refused(f"x.Y required password={SECRET}!;"),
            f"{NAME} cannot be read: expected a character JAAS does not allow there at "
            f"character 36; {EXAMPLE}",
        )

    def test_empty(self) -> None:
        self.assertEqual(
            self.refused("   "),
            f"{NAME} holds 0 login modules; Kafka's clients take exactly one: {EXAMPLE}",
        )

    def test_two_modules(self) -> None:
        self.assertEqual(
            self.refused(f'a.B required password="{SECRET}"; c.D required;'),
            f"{NAME} holds 2 login modules; Kafka's clients take exactly one: {EXAMPLE}",
        )
