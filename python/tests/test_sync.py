"""The blocking client, RemoteNanaSQLiteSync, against the real nanasqlite-server."""
import concurrent.futures
import unittest

from _support import WAIT, ServerCase

from nanasqlite_server import errors
from nanasqlite_server.client import RemoteNanaSQLiteSync


class SyncClientTest(ServerCase):
    KEYS = ("nana", "other")

    def test_dict_interface(self):
        with RemoteNanaSQLiteSync(**self.client_kwargs(table="dictlike")) as db:
            self.assertTrue(db.connected)
            db.clear()
            self.assertEqual(len(db), 0)
            db["a"] = 1
            db["b"] = {"list": [1, 2], "s": "x"}
            db["c"] = None
            self.assertEqual(db["a"], 1)
            self.assertEqual(db["b"], {"list": [1, 2], "s": "x"})
            self.assertIsNone(db["c"])
            self.assertIn("a", db)
            self.assertNotIn("zz", db)
            self.assertEqual(len(db), 3)
            self.assertEqual(sorted(db), ["a", "b", "c"])
            self.assertEqual(sorted(db.keys()), ["a", "b", "c"])
            self.assertEqual(db.get("a"), 1)
            self.assertIsNone(db.get("zz"))
            sentinel = object()  # any default, even one JSON cannot carry
            self.assertIs(db.get("zz", sentinel), sentinel)
            del db["a"]
            self.assertNotIn("a", db)
            with self.assertRaises(KeyError) as cm:
                db["a"]
            self.assertEqual(str(cm.exception), "'a'")
            with self.assertRaises(KeyError):
                del db["a"]
            # other methods by name
            self.assertEqual(db.batch_get(["b", "c", "nope"]), {"b": {"list": [1, 2], "s": "x"},
                                                                 "c": None})
            self.assertEqual(db.increment("n", 3, default=10), 13)
            self.assertEqual(db.call("__getitem__", "n"), 13)
            with self.assertRaises(PermissionError):
                db.vacuum()
            with self.assertRaises(AttributeError):
                db._hidden
            with self.assertRaises(TypeError):
                db["bytes"] = b"no"
        self.assertFalse(db.connected)
        with self.assertRaises(errors.NanaSQLiteClosedError):
            db["a"]

    def test_transports(self):
        """transport="h2": the same dict interface over gRPC on HTTP/2 (TCP,
        the server's port number) with the same results as over QUIC; what
        one writes the other reads; a bad transport is a ValueError."""
        with RemoteNanaSQLiteSync(**self.client_kwargs(table="h2", transport="h2")) as h2, \
                RemoteNanaSQLiteSync(**self.client_kwargs(table="h2", transport="quic",
                                                          fallback_timeout=0.5)) as q:
            h2.clear()
            h2["a"] = {"x": [1, 2.5, None]}
            self.assertEqual(q["a"], {"x": [1, 2.5, None]})
            q["b"] = 2
            self.assertEqual(h2["b"], 2)
            self.assertEqual(len(h2), 2)
            self.assertEqual(h2.get("zz", 3), 3)
            del h2["a"]
            with self.assertRaises(KeyError) as cm:
                h2["a"]
            self.assertEqual(str(cm.exception), "'a'")
            with self.assertRaises(KeyError):
                del h2["a"]
            with self.assertRaises(PermissionError):
                h2.vacuum()
        with self.assertRaises(ValueError):
            RemoteNanaSQLiteSync(**self.client_kwargs(transport="udp"))
        with self.assertRaises(ValueError):
            RemoteNanaSQLiteSync(**self.client_kwargs(fallback_timeout=0))

    def test_close_and_reconnect(self):
        db = RemoteNanaSQLiteSync(**self.client_kwargs())
        try:
            db["sync:reopen"] = "v"
            db.close()
            db.close()
            with self.assertRaises(errors.NanaSQLiteClosedError):
                len(db)
            db.connect()
            self.assertEqual(db["sync:reopen"], "v")
        finally:
            db.close()

    def test_table_view_and_db(self):
        with RemoteNanaSQLiteSync(**self.client_kwargs()) as db:
            view = db.table("sync_view")
            view["k"] = "in view"
            self.assertNotIn("k", db)
            self.assertEqual(view["k"], "in view")
            view.close()  # does nothing to the shared connection
            self.assertEqual(view["k"], "in view")
        with RemoteNanaSQLiteSync(**self.client_kwargs(db="sync.db", table="sync_view")) as db:
            self.assertNotIn("k", db)

    def test_threads_share_one_client(self):
        with RemoteNanaSQLiteSync(**self.client_kwargs(table="threads")) as db:
            def work(t):
                for i in range(25):
                    db[f"{t}:{i}"] = [t, i]
                return [db[f"{t}:{i}"] for i in range(25)]
            with concurrent.futures.ThreadPoolExecutor(8) as ex:
                results = list(ex.map(work, range(8), timeout=WAIT))
            for t, r in enumerate(results):
                self.assertEqual(r, [[t, i] for i in range(25)])
            self.assertEqual(len(db), 200)

    def test_connect_errors(self):
        with self.assertRaises(errors.AuthenticationError):
            RemoteNanaSQLiteSync(**self.client_kwargs(
                private_key_path=self.path("other_private.pem")))
        with self.assertRaises(ValueError):
            RemoteNanaSQLiteSync(**self.client_kwargs(
                private_key_path=self.path("missing_private.pem")))


if __name__ == "__main__":
    unittest.main()
