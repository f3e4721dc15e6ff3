"""The AQL module without a server: predicates, query building and the
errors raised before anything is sent (the server end is tested by
tests/e2e/test_aql_clients.py)."""
import unittest

import _support  # noqa: F401  (puts the package on the path)

from nanasqlite_server import _native, aql, errors


class PredicateTest(unittest.TestCase):
    def test_parse_gives_predicate_bytes(self):
        b = aql.parse_predicate('age >= 30 and city = "Tokyo"')
        self.assertIsInstance(b, bytes)
        self.assertIn(b"age", b)
        self.assertIn(b'"Tokyo"', b)

    def test_mistakes_name_the_column(self):
        with self.assertRaises(ValueError) as cm:
            aql.parse_predicate("age >=")
        self.assertIn("column 7", str(cm.exception))
        with self.assertRaises(ValueError) as cm:
            aql.parse_predicate("city = Tokyo")
        self.assertIn("column 8", str(cm.exception))


class BuildTest(unittest.TestCase):
    def test_queries_and_requests(self):
        q = aql._Build.get(b"data", "k1")
        self.assertIn(b"k1", q)
        r = aql._request(q)
        self.assertTrue(r.startswith(b"\x0a") and q in r)
        u = aql._Build.update(b"data", "a = 1", set={"s": "x"}, add={"n": 1})
        self.assertIn(b'"x"', u)

    def test_bad_arguments_are_refused_before_sending(self):
        with self.assertRaises(TypeError):
            aql._Build.get(b"data", 12)
        with self.assertRaises(ValueError):
            aql._Build.update(b"data", "a = 1")
        with self.assertRaises(ValueError):
            aql._Build.range(b"data", "a", "b", limit=-1)
        with self.assertRaises(TypeError):
            aql._Build.set(b"data", "k", object())

    def test_query_error_is_a_nanasqlite_error(self):
        out = _native.Outcome(_native.EQUERY, error_type="ERROR_VALIDATION_INVALID_KEY",
                              message="m", code="6000")
        e = aql._exception(out)
        self.assertIsInstance(e, errors.QueryError)
        self.assertIsInstance(e, errors.NanaSQLiteError)
        self.assertEqual((e.error_type, e.code), ("ERROR_VALIDATION_INVALID_KEY", "6000"))
        self.assertEqual(_native.status_name(_native.EQUERY), "QueryError")


if __name__ == "__main__":
    unittest.main()
