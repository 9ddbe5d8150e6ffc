"""
Fixtures of the adversarial suite: figures named after the test, and a
small disk for the data directory (tmpfs when it can be mounted).
"""

import subprocess

import pytest

from helpers import record


@pytest.fixture
def figure(request):
    """
    ``figure(name, value, unit)``: print and record an observed figure.
    """
    test = request.node.name

    def note(name, value, unit=""):
        record(test, name, value, unit)

    return note
