"""The OpenAPI document: valid OpenAPI 3, and every path it names is served."""

from __future__ import annotations

from openapi_spec_validator import validate
from twisted.trial.unittest import SynchronousTestCase

from kgateway.api.openapi import DOCUMENT

from .fakes import make_api_node


class DocumentTests(SynchronousTestCase):
    def test_valid_openapi(self) -> None:
        validate(DOCUMENT)  # raises on an invalid document

    def test_every_path_served_and_documented_codes_only(self) -> None:
        api = make_api_node(self)
        for path, item in DOCUMENT["paths"].items():
            response = self.successResultOf(api.get(path.replace("{name}", "nosuch")))
            self.assertIn(str(response.code), item["get"]["responses"], path)
            # A templated path names nothing stored yet.
            self.assertEqual(response.code, 404 if "{" in path else 200, path)

    def test_only_health_is_open(self) -> None:
        open_paths = {p for p, item in DOCUMENT["paths"].items() if not item["get"]["security"]}
        self.assertEqual(open_paths, {"/health/live", "/health/ready"})
