import pytest

from edgenas.errors import EdgeNASError
from edgenas.units import format_flops, parse_flops, parse_latency_ms


@pytest.mark.parametrize(("text", "expected"), [
    ("300M", 300_000_000), ("1.5G", 1_500_000_000), ("300000000", 300_000_000), ("300m", 300_000_000),
    ("12K", 12_000), (" 0.5G ", 500_000_000), ("2.5e8", 250_000_000),
])
def test_flops_accepted(text, expected):
    assert parse_flops(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("12ms", 12.0), ("0.8s", 800.0), ("1500us", 1.5), ("3 ms", 3.0), ("250µs", 0.25),
])
def test_latency_accepted(text, expected):
    assert parse_latency_ms(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["300X", "-5M", "", "M", "0", "0M", "ms", "12ms", "1.2.3M", "nan", "inf"])
def test_bad_flops_name_the_value_and_an_accepted_form(text):
    with pytest.raises(EdgeNASError) as info:
        parse_flops(text)
    message = str(info.value)
    assert repr(text) in message and "300M" in message and "\n" not in message


@pytest.mark.parametrize("text", ["ms", "", "-5ms", "12", "12h", "0ms", "12 m s", "300M"])
def test_bad_latency_name_the_value_and_an_accepted_form(text):
    with pytest.raises(EdgeNASError) as info:
        parse_latency_ms(text)
    message = str(info.value)
    assert repr(text) in message and "12ms" in message


def test_format_flops():
    assert format_flops(300_836_992) == "300.8M"
    assert format_flops(1_500_000_000) == "1.5G"
    assert format_flops(108_288) == "108.3K"
