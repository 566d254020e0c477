"""Probabilities are printed with the digits that matter."""

from saliency_tubes.numbers import probability


def test_small_probabilities_keep_their_significant_digits() -> None:
    assert [probability(p) for p in (0.62, 0.999, 0.1, 0.062, 0.0043, 0.0)] == [
        "0.62", "1.00", "0.10", "0.062", "0.0043", "0.00",
    ]  # fmt: skip
    assert probability(0.00431, 3) == "0.00431" and probability(0.6204, 3) == "0.620"
