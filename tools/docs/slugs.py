"""Heading anchors as nbdev makes them, so its doc links (`sysfs.html#device.allocated`) and
ours agree: lower case, spaces → `-`, dots kept, other punctuation dropped."""
from __future__ import annotations

import re


def heading_slug(text: str) -> str:
    return re.sub(r"\s+", "-", re.sub(r"[^\w\s.-]", "", text.strip().lower()))


assert heading_slug("Device.allocated") == "device.allocated"
assert heading_slug("The `Device` record") == "the-device-record"
