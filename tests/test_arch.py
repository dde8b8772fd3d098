"""Architecture files: they round-trip, and each kind of invalid file gives its own precise error."""

import json

import pytest

from edgenas.cost.presets import preset, random_arch
from edgenas.errors import EdgeNASError
from edgenas.space.arch import from_dict, load_arch
from edgenas.space.spec import get_space


@pytest.fixture
def mobile_arch():
    return preset("mobilenetv2", get_space("mobile"), 1000)


def test_round_trip(tmp_path, mobile_arch):
    path = mobile_arch.save(tmp_path / "arch.json")
    assert load_arch(path) == mobile_arch
    data = json.loads(path.read_text())
    assert data["layers"][:4] == ["k3_e6", "k3_e6", "skip", "skip"]
    assert data["space_hash"] == get_space("mobile").hash


def test_mobilenetv2_preset_layout(mobile_arch):
    per_stage = [0] * 6
    for layer, choice in zip(get_space("mobile"), mobile_arch.layers, strict=True):
        per_stage[layer.stage] += choice == "k3_e6"
    assert per_stage == [2, 3, 4, 3, 3, 1]


def test_random_preset_is_seeded():
    space = get_space("mobile")
    assert random_arch(space, 10, 3) == random_arch(space, 10, 3)
    assert random_arch(space, 10, 3) != random_arch(space, 10, 4)


def test_mobilenetv2_preset_is_refused_where_it_cannot_be_expressed():
    with pytest.raises(EdgeNASError, match="cannot be expressed in space tiny"):
        preset("mobilenetv2", get_space("tiny"), 10)
    with pytest.raises(EdgeNASError, match="unknown preset 'huge'"):
        preset("huge", get_space("tiny"), 10)


def _edit(arch, **changes):
    data = arch.to_dict()
    data.update(changes)
    return data


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["layers"].pop(), "'layers' has 20 entries; space mobile has 21 searchable layers"),
    (lambda d: d["layers"].__setitem__(3, "k9_e6"), "layer stages.0.3 has unknown choice 'k9_e6'"),
    (lambda d: d["layers"].__setitem__(3, "k3_e6_big"), "bad block choice 'k3_e6_big'"),
    (lambda d: d["layers"].__setitem__(4, "skip"), "layer stages.1.0 cannot be 'skip'"),
    (lambda d: d["layers"].__setitem__(0, 3), "layer stages.0.0 is 3"),
    (lambda d: d.__setitem__("space_hash", "0123456789abcdef"), "space_hash '0123456789abcdef' does not match"),
    (lambda d: d.__setitem__("resolution", 192), "does not match space mobile at resolution 192"),
    (lambda d: d.pop("num_classes"), "missing key 'num_classes'"),
    (lambda d: d.__setitem__("num_classes", "ten"), "'num_classes' is 'ten'; expected int"),
    (lambda d: d.__setitem__("num_classes", 1), "expected at least 2"),
    (lambda d: d.__setitem__("space", "huge"), "unknown search space 'huge'"),
    (lambda d: d.__setitem__("resolution", 100), "bad resolution 100"),
    (lambda d: d.__setitem__("format", 99), "architecture format 99 is not supported"),
])
def test_invalid_architectures_are_refused_precisely(mobile_arch, tmp_path, change, message):
    data = mobile_arch.to_dict()
    change(data)
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(data))
    with pytest.raises(EdgeNASError) as info:
        load_arch(path)
    assert message in str(info.value)
    assert str(info.value).startswith(f"{path}: ")


def test_malformed_and_missing_files(tmp_path):
    path = tmp_path / "arch.json"
    path.write_text('{"space": "mobile", ')
    with pytest.raises(EdgeNASError, match=r"is not valid JSON: .* line 1 column"):
        load_arch(path)
    with pytest.raises(EdgeNASError, match="does not exist"):
        load_arch(tmp_path / "missing.json")
    with pytest.raises(EdgeNASError, match="expected a JSON object"):
        from_dict(["k3_e6"])
