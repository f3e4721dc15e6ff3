"""The Python examples of python/README.md and of the top-level README (the
quick start), run as scripts against a real server.

Each ```python block of the README is run as written (only the port is
changed to the test server's), from the server's directory so that
cert.pem and nana_private.pem are found as in the quick start.
"""
import os
import re
import subprocess
import sys
import unittest

from _support import PYTHON_DIR, WAIT, ServerCase

README = os.path.join(PYTHON_DIR, "README.md")
TOP_README = os.path.join(os.path.dirname(PYTHON_DIR), "README.md")

# What each block prints (in order), from the comments in the README.
EXPECTED = [
    ["{'name': 'Nana', 'visits': 1}", "2", "deleted: 'user:1'"],
    ["4950"],
    ["hello True True", "default"],
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
        self.assertEqual(len(found), 1, "the top README has one Python quick start")
        self.assertEqual(self.run_block(found[0]), EXPECTED[0])


if __name__ == "__main__":
    unittest.main()
