"""The Python examples of python/README.md and of the top-level README (the
quick start), run as scripts against a real server; and the README's test
commands, run from the folders it names.

Each ```python block of the README is run as written (only the port is
changed to the test server's), from the server's directory so that
cert.pem and nana_private.pem are found as in the quick start.
"""
import os
import re
import subprocess
import sys
import unittest

from _support import PYTHON_DIR, REPO_DIR, WAIT, ServerCase

README = os.path.join(PYTHON_DIR, "README.md")
TOP_README = os.path.join(os.path.dirname(PYTHON_DIR), "README.md")

# What each block prints (in order), from the comments in the README.
EXPECTED = [
    ["{'name': 'Nana', 'visits': 1}", "2", "deleted: 'user:1'"],
    ["4950"],
    ["hello True True", "default"],
    ["{'age': 31, 'city': 'Tokyo'}", "[('u1', {'age': 31, 'city': 'Tokyo'})]", "1",
     "[{'age': 25, 'city': 'Kyoto'}, 0]", "['u1', 'u2']"],
]


def blocks(path=README):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


class ReadmeTest(ServerCase):
    def run_block(self, code):
        self.assertIn("port=4433", code)
        code = code.replace("port=4433", f"port={self.port}")
        env = dict(os.environ, PYTHONPATH=PYTHON_DIR)
        r = subprocess.run([sys.executable, "-c", code], cwd=self.dir, env=env,
                           capture_output=True, text=True, timeout=WAIT)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout.splitlines()

    def test_examples(self):
        found = blocks()
        self.assertEqual(len(found), len(EXPECTED), "README examples and EXPECTED disagree")
        for i, (code, expected) in enumerate(zip(found, EXPECTED)):
            with self.subTest(block=i):
                self.assertEqual(self.run_block(code), expected)

    def test_top_readme_quick_start(self):
        found = blocks(TOP_README)
        self.assertEqual(len(found), 2, "the top README: the Python quick start and AQL's")
        aql = [b for b in found if "AqlClient" in b]
        plain = [b for b in found if "AqlClient" not in b]
        self.assertEqual(len(aql), 1)
        self.assertEqual(self.run_block(plain[0]), EXPECTED[0])
        self.assertEqual(self.run_block(aql[0]), [
            "[('carol', {'age': 40, 'city': 'Tokyo'})]", "2", "['carol', 'dave']"])


def test_commands():
    """The commands of the README's "Tests" section: (folder to run in, argv)."""
    with open(README, encoding="utf-8") as f:
        text = f.read()
    section = text.split("\n## Tests\n", 1)[1].split("\n## ", 1)[0]
    found = []
    for block in re.findall(r"```sh\n(.*?)```", section, flags=re.S):
        for line in block.splitlines():
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            script = words[1]
            where = REPO_DIR if script.startswith("python/") else PYTHON_DIR
            found.append((where, words))
    return found


class ReadmeTestCommandsTest(unittest.TestCase):
    """The test command in python/README.md works as written, from the top of the repository
    and from python/, with nothing set in the environment (only -k narrows it here)."""

    def test_documented_test_commands(self):
        if not os.access(os.path.join(REPO_DIR, "build", "tools", "nanasqlite-server"), os.X_OK):
            self.skipTest("the documented command uses the default build (build/), not built")
        found = test_commands()
        self.assertEqual([w for w, _ in found], [REPO_DIR, PYTHON_DIR], found)
        env = {k: v for k, v in os.environ.items() if not k.startswith("NANASQLITE_")}
        for where, words in found:
            with self.subTest(folder=where):
                self.assertEqual(words[0], "python3")
                self.assertTrue(os.path.exists(os.path.join(where, words[1])), words)
                r = subprocess.run([sys.executable, *words[1:], "-k", "test_examples", "-q"],
                                   cwd=where, env=env, capture_output=True, text=True,
                                   timeout=10 * WAIT)
                last = (r.stdout.strip().splitlines() or [""])[-1]
                self.assertEqual(r.returncode, 0, r.stdout[-2000:] + r.stderr[-2000:])
                self.assertRegex(last, r"^[1-9]\d* passed, 0 failed$")


if __name__ == "__main__":
    unittest.main()
