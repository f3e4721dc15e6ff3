"""The asyncio client, RemoteNanaSQLite, against the real nanasqlite-server."""
import asyncio
import gc
import os
import signal
import subprocess
import threading
import time
import unittest
import warnings

from _support import AsyncServerCase, bin_dir, free_udp_port

from nanasqlite_server import _native, errors
from nanasqlite_server.client import RemoteNanaSQLite


class BasicsTest(AsyncServerCase):
    """Connecting, the dict helpers, methods by name, values, closing."""

    def test_connect_set_get_del_close(self):
        async def go():
            db = RemoteNanaSQLite(**self.client_kwargs())
            await db.connect()
            self.assertTrue(db.connected)
            await db.connect()  # a second connect does nothing
            self.assertIsNone(await db.set_item_async("basic:a", {"x": [1, 2, 3]}))
            self.assertEqual(await db.get_item_async("basic:a"), {"x": [1, 2, 3]})
            self.assertTrue(await db.contains_async("basic:a"))
            n = await db.len_async()
            self.assertIsInstance(n, int)
            self.assertGreaterEqual(n, 1)
            await db.del_item_async("basic:a")
            self.assertFalse(await db.contains_async("basic:a"))
            self.assertEqual(await db.len_async(), n - 1)
            await db.close()
            self.assertFalse(db.connected)
            await db.close()  # twice is fine
            with self.assertRaises(errors.NanaSQLiteClosedError):
                await db.get_item_async("basic:a")
            with self.assertRaises(errors.NanaSQLiteClosedError):
                await db.connect()
        self.run_async(go())

    def test_async_with(self):
        async def go():
            async with RemoteNanaSQLite(**self.client_kwargs()) as db:
                await db.set_item_async("with:k", "v")
                self.assertEqual(await db.get_item_async("with:k"), "v")
            self.assertFalse(db.connected)
            with self.assertRaises(errors.NanaSQLiteClosedError):
                await db.get_item_async("with:k")
        self.run_async(go())

    def test_call_before_connect(self):
        async def go():
            db = RemoteNanaSQLite(**self.client_kwargs())
            with self.assertRaises(errors.NanaSQLiteClosedError) as cm:
                await db.len_async()
            self.assertIn("connect", str(cm.exception))
        self.run_async(go())

    def test_values_round_trip(self):
        values = [None, True, False, 0, -1, 2**62, -(2**63), 1.5, -0.25, 2.0, 1e300, 0.1,
                  "", "plain",
                  "üñíçødé ✓ 🎉", "quote\"back\\slash\nnewline\u0000nul", [], {},
                  [1, "two", [3, {"four": 4}]], {"nested": {"a": [None, True, {"b": "c"}]}},
                  "x" * 100000]
        async def go():
            async with RemoteNanaSQLite(**self.client_kwargs()) as db:
                for i, v in enumerate(values):
                    await db.set_item_async(f"value:{i}", v)
                for i, v in enumerate(values):
                    got = await db.get_item_async(f"value:{i}")
                    self.assertEqual(got, v, f"value {i}")
                    self.assertIs(type(got), type(v), f"value {i}")
                # keys are str; unicode keys survive too
                await db.set_item_async("ключ🔑", 1)
                self.assertEqual(await db.get_item_async("ключ🔑"), 1)
                self.assertEqual(await db.get_item_async("value:9"), 2.0)
        self.run_async(go())

    def test_methods_by_name(self):
        async def go():
            async with RemoteNanaSQLite(**self.client_kwargs(table="byname")) as db:
                await db.clear()
                await db.batch_update({"a": 1, "b": {"n": 1}, "c": [3]})
                self.assertEqual(sorted(await db.keys()), ["a", "b", "c"])
                self.assertEqual(await db.batch_get(["a", "c", "zz"]), {"a": 1, "c": [3]})
                self.assertEqual(await db.increment("a", 4), 5)
                self.assertEqual(await db.increment("b", 2, field="n"), 3)
                self.assertEqual(await db.get("zz", "dflt"), "dflt")
                self.assertEqual(await db.get(key="a"), 5)
                await db.update({"d": 4}, e=5)  # positional and keyword arguments
                self.assertEqual(await db.to_dict(),
                                 {"a": 5, "b": {"n": 3}, "c": [3], "d": 4, "e": 5})
                self.assertEqual(await db.call("__len__"), 5)
                self.assertEqual(await db.get_by_path("b", "$.n"), 3)
                self.assertEqual(await db.pop("e"), 5)
                self.assertIn("byname", await db.list_tables())
        self.run_async(go())

    def test_private_names_are_not_proxied(self):
        db = RemoteNanaSQLite(**self.client_kwargs())
        with self.assertRaises(AttributeError):
            db._secret
        with self.assertRaises(AttributeError):
            db.__secret__
        with self.assertRaises(AttributeError):
            getattr(db, "_private_method")
        self.assertTrue(callable(db.some_method))

    def test_local_type_errors(self):
        async def go():
            async with RemoteNanaSQLite(**self.client_kwargs()) as db:
                with self.assertRaises(TypeError):
                    await db.set_item_async("bytes", b"\x00\x01")
                with self.assertRaises(TypeError):
                    await db.set_item_async("set", {1, 2})
                with self.assertRaises(ValueError):
                    await db.set_item_async("nan", float("nan"))
                self.assertFalse(await db.contains_async("bytes"))
                # a key of the wrong type is the server's TypeError
                with self.assertRaises(TypeError) as cm:
                    await db.get_item_async(5)
                self.assertEqual(cm.exception.error_type, "TypeError")
        self.run_async(go())

    def test_unclosed_client_is_released(self):
        async def go():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                db = RemoteNanaSQLite(**self.client_kwargs())
                await db.connect()
                await db.len_async()
                del db
                gc.collect()
            self.assertTrue([w for w in caught if issubclass(w.category, ResourceWarning)])
        self.run_async(go())

    def test_bad_arguments_rejected_at_construction(self):
        with self.assertRaises(ValueError):
            RemoteNanaSQLite(**self.client_kwargs(port=70000))
        with self.assertRaises(ValueError):
            RemoteNanaSQLite(**self.client_kwargs(timeout=0))


class ErrorsTest(AsyncServerCase):
    """Errors from the server become the exceptions they name."""

    def test_missing_key(self):
        async def go():
            async with RemoteNanaSQLite(**self.client_kwargs()) as db:
                with self.assertRaises(KeyError) as cm:
                    await db.get_item_async("missing")
                e = cm.exception
                self.assertEqual(str(e), "'missing'")
                self.assertEqual(e.args, ("missing",))
                self.assertEqual(e.error_type, "KeyError")
                self.assertIsNone(e.code)
                with self.assertRaises(KeyError) as cm:
                    await db.del_item_async("missing too")
                self.assertEqual(str(cm.exception), "'missing too'")
                with self.assertRaises(KeyError) as cm:
                    await db.pop("missing three")
                self.assertEqual(cm.exception.args, ("missing three",))
        self.run_async(go())

    def test_forbidden_method(self):
        async def go():
            async with RemoteNanaSQLite(**self.client_kwargs()) as db:
                with self.assertRaises(PermissionError) as cm:
                    await db.vacuum()
                self.assertIn("vacuum", str(cm.exception))
                self.assertEqual(cm.exception.error_type, "PermissionError")
                with self.assertRaises(PermissionError):
                    await db.execute("DROP TABLE data")
                with self.assertRaises(PermissionError):
                    await db.no_such_method()
                # the connection is still good afterwards
                await db.set_item_async("after-error", 1)
                self.assertEqual(await db.get_item_async("after-error"), 1)
        self.run_async(go())

    def test_validation_error_class(self):
        async def go():
            async with RemoteNanaSQLite(**self.client_kwargs()) as db:
                with self.assertRaises(errors.NanaSQLiteValidationError) as cm:
                    await db.get_table_schema("bad name; --")
                self.assertIsInstance(cm.exception, errors.NanaSQLiteError)
                self.assertEqual(cm.exception.error_type, "NanaSQLiteValidationError")
        self.run_async(go())

    def test_binding_error_is_type_error(self):
        async def go():
            async with RemoteNanaSQLite(**self.client_kwargs()) as db:
                with self.assertRaises(TypeError) as cm:
                    await db.get("a", "b", "c")
                self.assertIn("positional", str(cm.exception))
        self.run_async(go())


class ConcurrencyTest(AsyncServerCase):
    """Many awaits on one connection; cancellation; no thread per call."""

    def test_100_concurrent_awaits(self):
        async def go():
            async with RemoteNanaSQLite(**self.client_kwargs()) as db:
                threads_before = threading.active_count()
                await asyncio.gather(*(db.set_item_async(f"c:{i}", {"i": i, "sq": i * i})
                                       for i in range(100)))
                got = await asyncio.gather(*(db.get_item_async(f"c:{i}") for i in range(100)))
                self.assertEqual(got, [{"i": i, "sq": i * i} for i in range(100)])
                mixed = await asyncio.gather(
                    *(db.contains_async(f"c:{i}") if i % 2 else db.get_item_async(f"c:{i}")
                      for i in range(100)),
                    return_exceptions=True)
                for i, r in enumerate(mixed):
                    self.assertEqual(r, True if i % 2 else {"i": i, "sq": i * i})
                self.assertEqual(threading.active_count(), threads_before,
                                 "calls must not start threads")
                self.assertEqual(db._shared.link.futures, {})
        self.run_async(go())

    def test_concurrent_errors_and_successes(self):
        async def go():
            async with RemoteNanaSQLite(**self.client_kwargs()) as db:
                await db.set_item_async("present", "yes")
                results = await asyncio.gather(
                    *(db.get_item_async("present" if i % 3 else f"absent:{i}")
                      for i in range(60)),
                    return_exceptions=True)
                for i, r in enumerate(results):
                    if i % 3:
                        self.assertEqual(r, "yes")
                    else:
                        self.assertIsInstance(r, KeyError)
                        self.assertEqual(r.args, (f"absent:{i}",))
        self.run_async(go())

    def test_cancelling_one_await(self):
        async def go():
            async with RemoteNanaSQLite(**self.client_kwargs()) as db:
                tasks = [asyncio.ensure_future(db.set_item_async(f"x:{i}", i)) for i in range(40)]
                await asyncio.sleep(0)  # every call is submitted now
                victim = tasks[17]
                victim.cancel()
                with self.assertRaises(asyncio.CancelledError):
                    await victim
                others = [t for t in tasks if t is not victim]
                await asyncio.gather(*others)
                got = await asyncio.gather(*(db.get_item_async(f"x:{i}")
                                             for i in range(40) if i != 17))
                self.assertEqual(got, [i for i in range(40) if i != 17])
                # Cancelled calls may still run; the connection keeps working
                # and the cancelled call's result is dropped when it arrives.
                cancelled = asyncio.ensure_future(db.get_item_async("x:1"))
                await asyncio.sleep(0)
                cancelled.cancel()
                self.assertEqual(await db.get_item_async("x:2"), 2)
                for _ in range(100):
                    if not db._shared.link.futures:
                        break
                    await asyncio.sleep(0.01)
                self.assertEqual(db._shared.link.futures, {})
                # wait_for's timeout cancels the same way
                with self.assertRaises(asyncio.TimeoutError):
                    await asyncio.wait_for(db.get_item_async("x:3"), 0)
                self.assertEqual(await db.get_item_async("x:3"), 3)
        self.run_async(go())

    def test_close_with_calls_pending(self):
        async def go():
            db = RemoteNanaSQLite(**self.client_kwargs())
            await db.connect()
            tasks = [asyncio.ensure_future(db.get_item_async(f"c:{i}")) for i in range(50)]
            await asyncio.sleep(0)
            await db.close()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            for r in results:
                # each call either finished before close or failed as closed
                self.assertTrue(r is None or isinstance(r, (dict, KeyError,
                                                            errors.NanaSQLiteClosedError)),
                                repr(r))
        self.run_async(go())

    def test_two_clients_two_loops(self):
        # Each asyncio.run is a new loop; a client belongs to the loop it connected in.
        for _ in range(2):
            async def go():
                async with RemoteNanaSQLite(**self.client_kwargs()) as db:
                    await db.set_item_async("loop", 1)
                    return await db.get_item_async("loop")
            self.assertEqual(self.run_async(go()), 1)


class ConnectErrorsTest(AsyncServerCase):
    """Failures to connect: wrong port, wrong key, bad key file, bad trust."""

    KEYS = ("nana", "other")

    def test_wrong_port_fails_in_bounded_time(self):
        port = free_udp_port()

        async def go():
            ticks = 0

            async def ticker():
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1
            t = asyncio.ensure_future(ticker())
            start = time.monotonic()
            try:
                with self.assertRaises(errors.NanaSQLiteConnectionError) as cm:
                    await RemoteNanaSQLite(**self.client_kwargs(port=port, timeout=2)).connect()
            finally:
                t.cancel()
            elapsed = time.monotonic() - start
            self.assertLess(elapsed, 10, "connecting to a closed port must fail in bounded time")
            self.assertNotIsInstance(cm.exception, errors.AuthenticationError)
            self.assertEqual(cm.exception.error_type, "NanaSQLiteConnectionError")
            # the event loop kept running while the connect was in progress
            if elapsed > 0.2:
                self.assertGreater(ticks, 5)
        self.run_async(go())

    def test_wrong_key_is_authentication_error(self):
        async def go():
            db = RemoteNanaSQLite(**self.client_kwargs(
                private_key_path=self.path("other_private.pem")))
            with self.assertRaises(errors.AuthenticationError) as cm:
                await db.connect()
            self.assertIsInstance(cm.exception, errors.NanaSQLiteConnectionError)
            self.assertEqual(cm.exception.error_type, "AuthenticationError")
            # the right key still works after
            async with RemoteNanaSQLite(**self.client_kwargs()) as ok:
                self.assertIsInstance(await ok.len_async(), int)
        self.run_async(go())

    def test_bad_key_file(self):
        bad = self.path("garbage_private.pem")
        with open(bad, "w") as f:
            f.write("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")

        async def go():
            for path in (bad, self.path("no_such_key.pem"), self.path("cert.pem")):
                db = RemoteNanaSQLite(**self.client_kwargs(private_key_path=path))
                with self.assertRaises(ValueError, msg=path) as cm:
                    await db.connect()
                self.assertEqual(cm.exception.error_type, "ValueError")
        self.run_async(go())

    def test_untrusted_certificate(self):
        other = os.path.join(self.dir, "other-ca")
        os.makedirs(other, exist_ok=True)
        subprocess.run([os.path.join(bin_dir(), "nanasqlite-cert-gen")], cwd=other, check=True,
                       stdout=subprocess.DEVNULL, timeout=60)

        async def go():
            db = RemoteNanaSQLite(**self.client_kwargs(
                ca_cert_path=os.path.join(other, "cert.pem"), timeout=5))
            with self.assertRaises(errors.NanaSQLiteConnectionError) as cm:
                await db.connect()
            self.assertNotIsInstance(cm.exception, errors.AuthenticationError)
            db = RemoteNanaSQLite(**self.client_kwargs(server_name="not-this-host.example",
                                                       timeout=5))
            with self.assertRaises(errors.NanaSQLiteConnectionError):
                await db.connect()
        self.run_async(go())


class AccountsTest(AsyncServerCase):
    """account_name with an accounts file; codes on errors (rate limit)."""

    KEYS = ("nana", "reader")
    ACCOUNTS = [{"name": "writer", "key": "nana"},
                {"name": "reader", "key": "reader", "read_only": True}]

    def test_read_only_account(self):
        async def go():
            async with RemoteNanaSQLite(**self.client_kwargs(account_name="writer")) as w:
                await w.set_item_async("acct", 1)
            async with RemoteNanaSQLite(**self.client_kwargs(
                    account_name="reader", private_key_path=self.path("reader_private.pem"))) as r:
                self.assertEqual(await r.get_item_async("acct"), 1)
                with self.assertRaises(PermissionError) as cm:
                    await r.set_item_async("acct", 2)
                self.assertIn("read-only", str(cm.exception))
        self.run_async(go())


class RateLimitTest(AsyncServerCase):
    """A refusal with a machine-readable code keeps it in .code."""

    SERVER_FLAGS = ("--no-bans", "--rate-limit", "2")

    def test_rate_limited_code(self):
        async def go():
            async with RemoteNanaSQLite(**self.client_kwargs()) as db:
                results = await asyncio.gather(*(db.len_async() for _ in range(20)),
                                               return_exceptions=True)
            limited = [r for r in results if isinstance(r, Exception)]
            self.assertTrue(limited, "some calls must be refused")
            for e in limited:
                self.assertIsInstance(e, RuntimeError)
                self.assertEqual(e.error_type, "RuntimeError")
                self.assertEqual(e.code, "rate_limited")
        self.run_async(go())


class OutageTest(AsyncServerCase):
    """A frozen server: the client's TimeoutError, UnknownOutcomeError, reconnection."""

    def setUp(self):
        self.addCleanup(self.resume)

    def freeze(self):
        os.kill(self.server.proc.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.server.proc.pid, signal.SIGCONT)

    def test_timeout_error(self):
        async def go():
            async with RemoteNanaSQLite(**self.client_kwargs(timeout=1)) as db:
                await db.set_item_async("outage", 1)
                self.freeze()
                await asyncio.sleep(0.2)
                start = time.monotonic()
                with self.assertRaises(TimeoutError) as cm:
                    await db.get_item_async("outage")
                self.assertLess(time.monotonic() - start, 5)
                self.assertEqual(cm.exception.error_type, "TimeoutError")
                self.resume()
                self.assertEqual(await db.get_item_async("outage"), 1)
        self.run_async(go())

    def test_unknown_outcome_then_reconnect(self):
        async def go():
            async with RemoteNanaSQLite(**self.client_kwargs(timeout=20,
                                                             idle_timeout=1.5)) as db:
                await db.set_item_async("outage2", "before")
                self.freeze()
                await asyncio.sleep(0.2)
                start = time.monotonic()
                with self.assertRaises(errors.UnknownOutcomeError) as cm:
                    await db.set_item_async("outage2", "maybe")
                self.assertLess(time.monotonic() - start, 15)
                self.assertIsInstance(cm.exception, errors.NanaSQLiteConnectionError)
                self.assertEqual(cm.exception.error_type, "UnknownOutcomeError")
                self.resume()
                # the client reconnects by itself; the write was never resent
                self.assertIn(await db.get_item_async("outage2"), ("before", "maybe"))
                await db.set_item_async("outage2", "after")
                self.assertEqual(await db.get_item_async("outage2"), "after")
                self.assertGreaterEqual(
                    _native.lib.nana_client_reconnects(db._shared.link.handle), 1)
        self.run_async(go())


class SelectionTest(AsyncServerCase):
    """db= and table= choose the database file and the table; table() views."""

    def test_table_and_db(self):
        async def go():
            async with RemoteNanaSQLite(**self.client_kwargs()) as main, \
                    RemoteNanaSQLite(**self.client_kwargs(table="sessions")) as sessions, \
                    RemoteNanaSQLite(**self.client_kwargs(db="other.db")) as other, \
                    RemoteNanaSQLite(**self.client_kwargs(db="other.db", table="t2")) as other_t2:
                await main.set_item_async("where", "main/data")
                await sessions.set_item_async("where", "main/sessions")
                await other.set_item_async("where", "other/data")
                await other_t2.set_item_async("where", "other/t2")
                self.assertEqual(await main.get_item_async("where"), "main/data")
                self.assertEqual(await sessions.get_item_async("where"), "main/sessions")
                self.assertEqual(await other.get_item_async("where"), "other/data")
                self.assertEqual(await other_t2.get_item_async("where"), "other/t2")
                # a view shares the connection and picks the table
                view = main.table("sessions")
                self.assertEqual(await view.get_item_async("where"), "main/sessions")
                await view.close()  # a view's close leaves the connection open
                self.assertTrue(main.connected)
                self.assertEqual(await other.table("t2").get_item_async("where"), "other/t2")
                self.assertIn("sessions", await main.list_tables())
                self.assertTrue(os.path.exists(os.path.join(self.dir, "other.db")))
                bad = RemoteNanaSQLite(**self.client_kwargs(db="../escape.db"))
                await bad.connect()
                try:
                    with self.assertRaises(PermissionError):
                        await bad.len_async()
                finally:
                    await bad.close()
        self.run_async(go())


if __name__ == "__main__":
    unittest.main()
