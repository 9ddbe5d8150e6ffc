"""
twistd plugin: ``twistd -n chatd --port 5002``.
"""

from twisted.application.service import ServiceMaker

chatd = ServiceMaker(
    "chatd",
    "chatd.tap",
    "Group chat with file sharing over plain TCP lines.",
    "chatd",
)
