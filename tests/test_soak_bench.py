"""The soak bench's pieces that need no training: its folder and its log
reading (`bench/varied_folder.py`, `bench/soak_report.py`)."""

import glob
import hashlib
import os

from PIL import Image

from bench import soak_report
from bench.varied_folder import make_varied_folder
from la_keras.datasets import folder_index
from tests.test_case import TestCase


def _digest(root):
    digest = hashlib.sha256()
    for path in sorted(glob.glob(os.path.join(root, "*", "*", "*"))):
        digest.update(os.path.relpath(path, root).encode())
        with open(path, "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()


class VariedFolderTest(TestCase):
    def test_long_tail_balanced_test_and_every_kind_of_file(self):
        root = os.path.join(self.get_temp_dir(), "varied")
        made = make_varied_folder(root, 3, 40, imbalance=10, test_per_class=2)
        self.assertEqual(made["train"], [40, 13, 4])
        self.assertEqual(made["test"], [2, 2, 2])
        files = sorted(glob.glob(os.path.join(root, "train", "*", "*")))
        self.assertLen(files, 57)
        modes, orientations, progressive, sides = set(), set(), 0, []
        for path in files:
            with Image.open(path) as image:
                modes.add(image.mode)
                orientations.add(image.getexif().get(0x0112))
                progressive += bool(image.info.get("progressive"))
                sides += list(image.size)
        self.assertEqual(modes, {"RGB", "L", "CMYK", "P", "RGBA"})
        self.assertTrue({3, 6, 8} & orientations)
        self.assertGreater(progressive, 0)
        self.assertGreaterEqual(min(sides), 60)
        self.assertLessEqual(max(sides), 1000)
        # la_keras reads every file (none is refused as bad).
        index = folder_index.build(root, None)
        self.assertEqual(index.bad, {})
        self.assertLen(index.files["train"], 57)

    def test_a_function_of_its_arguments_and_seed(self):
        roots = [os.path.join(self.get_temp_dir(), n) for n in "abc"]
        for root, seed in zip(roots, (0, 0, 1), strict=True):
            make_varied_folder(root, 2, 3, test_per_class=1, seed=seed)
        digests = [_digest(root) for root in roots]
        self.assertEqual(digests[0], digests[1])
        self.assertNotEqual(digests[0], digests[2])


class SoakReportTest(TestCase):
    def test_warning_lines(self):
        cases = {
            "W1207 09:37:04.123456  140234 file.py:12] slow": (
                "WARNING",
                "file.py:12] slow",
            ),
            "E0000 00:00:1796636343.594849    7271 x.cc:1] bad": (
                "ERROR",
                "x.cc:1] bad",
            ),
            "/a/b.py:3: UserWarning: hm": (
                "WARNING",
                "UserWarning: hm (/a/b.py:3)",
            ),
            "launch.train: error: --x=1 is bad": (
                "ERROR",
                "launch.train: error: --x=1 is bad",
            ),
            "ValueError: boom": ("ERROR", "ValueError: boom"),
            "Fatal Python error: Segmentation fault": (
                "FATAL",
                "Fatal Python error: Segmentation fault",
            ),
        }
        for line, expected in cases.items():
            self.assertEqual(soak_report.warning_line(line), expected, line)
        for line in ("step 3/9 - loss: 1.2", "I0000 00:00:1.5  7 x.cc:1] info"):
            self.assertIsNone(soak_report.warning_line(line))

    def test_counted_once_across_runs_and_exit_codes(self):
        logs = []
        for n in range(2):
            path = os.path.join(self.get_temp_dir(), f"{n}.log")
            with open(path, "w") as f:
                f.write(
                    f"W1207 09:37:0{n}.1  {n} a.py:1] at 0x{n}f\nstep 1/2\n"
                )
            logs.append(soak_report.Row(f"run{n}", log=path))
        found = soak_report.warnings(logs)
        self.assertEqual(
            found, [("WARNING", "a.py:1] at 0x?", 2, ["run0", "run1"])]
        )
        self.assertEqual(soak_report.exit_text(-11), "139 SIGSEGV")
        self.assertEqual(soak_report.exit_text(75), "75")
        crashed = soak_report.Row("crash", exit_code=-11)
        self.assertFalse(crashed.ok)
        self.assertTrue(
            soak_report.Row("stop", exit_code=75, expected_exit=75).ok
        )
