import pytest

from edgenas.errors import EdgeNASError
from edgenas.space.choices import make_divisible, parse_choice
from edgenas.space.spec import SPACES, TINY, SpaceRegistry, get_space


def test_mobile_space_has_21_layers_with_13_choices_where_skip_is_allowed():
    space = get_space("mobile")
    assert space.resolution == 224 and len(space) == 21
    assert [layer.label for layer in space][:5] == ["stages.0.0", "stages.0.1", "stages.0.2", "stages.0.3",
                                                    "stages.1.0"]
    for layer in space:
        assert len(layer.blocks) == 12
        assert layer.allows_skip == (layer.index > 0)
        assert len(layer.choices) == (13 if layer.index > 0 else 12)
    assert [layer.out_channels for layer in space if layer.index == 0] == [24, 32, 64, 96, 160, 320]


def test_mobile_shapes_follow_mobilenetv2():
    space = get_space("mobile")
    assert (space.stem_channels, space.stem_size, space.first_channels) == (32, 112, 16)
    first = {layer.stage: layer for layer in space if layer.index == 0}
    assert [(f.in_channels, f.in_size, f.out_size, f.stride) for f in first.values()] == [
        (16, 112, 56, 2), (24, 56, 28, 2), (32, 28, 14, 2), (64, 14, 14, 1), (96, 14, 7, 2), (160, 7, 7, 1)]
    assert (space.last_channels, space.last_size, space.head_channels) == (320, 7, 1280)


def test_mobile_small_downsamples_four_times():
    space = get_space("mobile-small")
    assert space.resolution == 32 and space.spec.total_stride == 16
    assert space.stem_size == 32 and space.last_size == 2


def test_resolutions_must_be_multiples_of_16_and_cover_the_total_stride():
    assert get_space("mobile", 160).layers[-1].out_size == 5
    assert get_space("mobile", 48).layers[-1].out_size == 2  # odd sizes round up, as the convolutions do
    for bad in (100, 0, 16, -32):
        with pytest.raises(EdgeNASError, match=f"bad resolution {bad}"):
            get_space("mobile", bad)
    assert get_space("tiny", 16).resolution == 16


def test_width_multiplier_rounds_channels_to_multiples_of_8():
    space = get_space("mobile", 224, 0.5)
    assert space.stem_channels == 16 and space.first_channels == 8
    assert [layer.out_channels for layer in space if layer.index == 0] == [16, 16, 32, 48, 80, 160]
    assert space.head_channels == 1280  # MobileNetV2 keeps the head wide below 1.0
    assert get_space("mobile", 224, 1.4).head_channels == 1792
    assert make_divisible(0.35 * 24) == 8
    with pytest.raises(EdgeNASError, match="width multiplier"):
        get_space("mobile", 224, 0.0)


def test_structural_hash_depends_on_space_resolution_and_width():
    hashes = {get_space(n, r, w).hash for n, r, w in [("mobile", 224, 1.0), ("mobile", 192, 1.0),
                                                       ("mobile", 224, 0.75), ("mobile-small", 224, 1.0)]}
    assert len(hashes) == 4
    assert get_space("mobile").hash == get_space("mobile", 224, 1.0).hash


def test_registry_refuses_duplicates_and_unknown_names():
    registry = SpaceRegistry((TINY,))
    with pytest.raises(EdgeNASError, match="already registered"):
        registry.register(TINY)
    with pytest.raises(EdgeNASError, match="unknown search space 'nope'"):
        SPACES.get("nope")
    assert set(SPACES.names()) >= {"mobile", "mobile-small", "tiny"}


def test_choice_strings():
    choice = parse_choice("k5_e6_se")
    assert (choice.kernel, choice.expansion, choice.se, choice.name) == (5, 6, True, "k5_e6_se")
    assert parse_choice("skip") is None
    for bad in ("k4_e6", "k3e6", "k3_e0", "K3_E6", "k3_e6_SE"):
        with pytest.raises(EdgeNASError, match="bad block choice"):
            parse_choice(bad)


def test_structural_hashes_of_the_existing_spaces_are_pinned():
    # Shipped latency tables, FLOPs caches and saved runs record these hashes: a change to the space format must
    # leave them byte for byte as they are (new description keys only where a space differs from the old format).
    pinned = {("mobile", 224, 1.0): "a32ea808663e5228", ("mobile", 224, 0.5): "351b96a6b9dcb032",
              ("mobile-small", 32, 1.0): "c5e637cd9c0f4f10", ("mobile-small", 16, 0.5): "25e14d3170989a10",
              ("tiny", 16, 1.0): "27fcbd1645c5732b"}
    assert {key: get_space(*key).hash for key in pinned} == pinned


# sha256 of the keys of each space's pieces, one per line, as the three listings before `space.pieces` gave them
# (`latency.space_keys`, the profiler's `space_pieces`, FLOPs' counting; computed with commit b6823b7).
PINNED_KEYS = {
    ("mobile", None, 1.0): "5b34c1d8828714ff", ("mobile", None, 0.5): "d795a693b4cab5e7",
    ("mobile", None, 1.4): "1db9fe9fa43aed79", ("mobile", 64, 1.0): "aa6ebe6b135785d0",
    ("mobile", 64, 0.5): "c4353cd0ed039bc0", ("mobile", 64, 1.4): "01eca9191b0b8848",
    ("mobile-small", None, 1.0): "dfe24ac7876c2200", ("mobile-small", None, 0.5): "98f03dff86eecf04",
    ("mobile-small", None, 1.4): "976d017f2fc792aa", ("mobile-small", 64, 1.0): "1a1b4493e3e5d414",
    ("mobile-small", 64, 0.5): "d87a645c66b374cc", ("mobile-small", 64, 1.4): "20a2521d9e995f89",
    ("tiny", None, 1.0): "ba5679d40f14415a", ("tiny", None, 0.5): "77adb9774b8fb01e",
    ("tiny", None, 1.4): "89fb11ff7d03c518", ("tiny", 64, 1.0): "9298801b4c4aece4",
    ("tiny", 64, 0.5): "01ada0fe7fb74772", ("tiny", 64, 1.4): "cea079278568627d",
    ("macro", None, 1.0): "66091eb1d57bf128", ("macro", None, 0.5): "ba944a2898d3865c",
    ("macro", None, 1.4): "fb974757de5b5c1d", ("macro", 64, 1.0): "096760a7c0d42a7a",
    ("macro", 64, 0.5): "48dfa0c14825c65d", ("macro", 64, 1.4): "6025562ba6795fd7",
    # mcu (issue 37) from its first version on
    ("mcu", None, 1.0): "5172237498270af8", ("mcu", None, 0.5): "fa1003ae002aa583",
    ("mcu", None, 1.4): "d8f418d6acbac76b", ("mcu", 64, 1.0): "00d3c25556887dd7",
    ("mcu", 64, 0.5): "f19cdd4969d1b2e7", ("mcu", 64, 1.4): "6ed2b4112aa12a77",
}


def test_the_pieces_of_every_space_keep_the_keys_tables_were_written_with():
    """Shipped and users' latency tables are keyed by these: the one listing must give the keys (and their order)
    the three listings it replaced gave, for every registered space at two resolutions and three widths."""
    import hashlib

    from edgenas.cost.latency import space_keys
    from edgenas.space.pieces import space_pieces

    assert {name for name, _, _ in PINNED_KEYS} == set(SPACES.names())
    digests = {}
    for name, resolution, width in PINNED_KEYS:
        space = get_space(name, resolution, width)
        keys = [piece.key for piece in space_pieces(space)]
        assert keys == space_keys(space) and len(set(keys)) == len(keys)
        digests[name, resolution, width] = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16]
    assert digests == PINNED_KEYS


def test_every_piece_builds_a_module_that_runs_on_the_shape_its_key_names():
    import torch

    from edgenas.space.pieces import space_pieces

    space = get_space("macro")
    pieces = space_pieces(space)
    assert [p.key.split(":")[0] for p in pieces[:3]] == ["stem", "head", "head"]
    for piece in pieces:
        channels, height, width = piece.input_shape
        if piece.key.startswith("ir:"):
            assert f":{channels}x{height}x{width}:" in piece.key
        with torch.no_grad():
            piece.build().eval()(torch.zeros(1, *piece.input_shape))
