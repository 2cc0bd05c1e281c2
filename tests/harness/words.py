"""Passphrases are wordlist words joined by "-": count how many a phrase is made of."""
from __future__ import annotations


def word_counts(phrase: str, wordlist: set[str]) -> set[int]:
    """How many wordlist words `phrase` can be split into (EFF words such as `yo-yo` contain the
    separator, so a phrase may split more than one way); empty when it cannot be split at all."""
    parts = phrase.split("-")
    counts: list[set[int]] = [set() for _ in range(len(parts) + 1)]
    counts[0].add(0)
    for end in range(1, len(parts) + 1):
        for start in range(end):
            if counts[start] and "-".join(parts[start:end]) in wordlist:
                counts[end] |= {n + 1 for n in counts[start]}
    return counts[-1]


def assert_words(phrase: str, count: int, wordlist: set[str]) -> None:
    assert count in word_counts(phrase, wordlist), f"{phrase!r} is not {count} wordlist words"
