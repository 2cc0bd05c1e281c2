"""Passphrases are wordlist words joined by "-": assert how many a phrase is made of
(the segmentation is the product's: `mock_accel.firmware.passphrase_word_counts`)."""
from __future__ import annotations

from mock_accel.firmware import passphrase_word_counts as word_counts

__all__ = ["assert_words", "word_counts"]


def assert_words(phrase: str, count: int, wordlist: set[str]) -> None:
    assert count in word_counts(phrase, wordlist), f"{phrase!r} is not {count} wordlist words"
