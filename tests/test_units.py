import pytest

from edgenas.errors import EdgeNASError
from edgenas.units import format_bytes, format_flops, parse_bytes, parse_flops, parse_latency_ms


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


@pytest.mark.parametrize(("text", "expected"), [
    ("512KB", 512_000), ("1.5MB", 1_500_000), ("1MiB", 1_048_576), ("256KiB", 262_144), ("300000", 300_000),
    ("300000B", 300_000), ("0.5 kb", 500), ("2GB", 2_000_000_000), ("1e3KB", 1_000_000),
])
def test_sizes_accepted(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["0", "0KB", "5XB", "-1KB", "", "KB", "1Mi", "12ms", "nan", "inf", "0.0001B"])
def test_bad_sizes_name_the_flag_the_value_and_an_accepted_form(text):
    with pytest.raises(EdgeNASError) as info:
        parse_bytes(text, "--model-size")
    message = str(info.value)
    assert f"--model-size {text!r}" in message and "512KB" in message and "\n" not in message


def test_format_bytes():
    assert format_bytes(262_144) == "262.1KB" and format_bytes(1_500_000) == "1.5MB" and format_bytes(999) == "999B"
