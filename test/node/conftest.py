import sys
from pathlib import Path

PYTHON_TESTS = Path(__file__).resolve().parents[1] / "python"
sys.path.insert(0, str(PYTHON_TESTS))  # the shared harness and scenarios
sys.path.insert(0, str(PYTHON_TESTS.parents[1] / "python"))

from fixtures import *  # noqa: E402,F401,F403
