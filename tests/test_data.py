"""Dataset loading (digits, ImageFolder, CIFAR, .npz), deterministic splits, errors on bad data, and batches."""

import json
import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from edgenas.cli.app import app
from edgenas.data.batches import augment, batches, normalize
from edgenas.data.dataset import Dataset, count_images, load_dataset
from edgenas.errors import EdgeNASError

COLOURS = {"ant": (10, 20, 30), "bee": (100, 110, 120), "cat": (200, 210, 220)}


def _write_images(folder, count, colour=None, *, suffix="png", size=(20, 24), seed=0):
    """`count` images of width x height `size`: constant `colour`, or random noise when colour is None."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        shape = (size[1], size[0], 3)
        pixels = rng.integers(0, 256, shape, dtype=np.uint8) if colour is None else np.full(shape, colour, np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i}.{suffix}")


def _split_tree(root, test_name="test", classes=("cat", "ant", "bee")):
    for name in classes:
        _write_images(root / "train" / name, 6, COLOURS[name])
        _write_images(root / test_name / name, 2, COLOURS[name], suffix="jpg")
    return root


def _single_tree(root, per_class=5):
    for i, name in enumerate(("b", "a", "c")):
        _write_images(root / name, per_class, seed=i)
    return root


def _error(path, *fragments, **kwargs) -> str:
    with pytest.raises(EdgeNASError) as info:
        load_dataset(path, 16, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert str(fragment) in message
    return message


def _assert_same(a: Dataset, b: Dataset):
    assert a.classes == b.classes
    for split in ("train", "val", "test"):
        assert torch.equal(a.x[split], b.x[split])
        assert torch.equal(a.y[split], b.y[split])


# ---------------------------------------------------------------- embedded digits


@pytest.fixture(scope="module")
def digits():
    return load_dataset(None, 32)


def test_digits_shapes_classes_and_total(digits):
    assert digits.name == "digits" and digits.classes == [str(i) for i in range(10)]
    for split in ("train", "val", "test"):
        assert digits.x[split].dtype == torch.uint8 and digits.y[split].dtype == torch.int64
        assert digits.x[split].shape[1:] == (3, 32, 32)
        assert len(digits.x[split]) == digits.size(split) > 0
    assert sum(digits.size(s) for s in ("train", "val", "test")) == 1797
    assert digits.resolution == 32 and digits.flip is False


def test_digits_val_is_a_tenth_of_train_and_class_balanced(digits):
    fraction = digits.size("val") / (digits.size("train") + digits.size("val"))
    assert 0.09 <= fraction <= 0.11
    assert torch.bincount(digits.y["val"], minlength=10).min() >= 1
    assert torch.bincount(digits.y["test"], minlength=10).min() >= 1


def test_digits_split_is_deterministic(digits):
    _assert_same(digits, load_dataset(None, 32))


def test_digits_describe(digits):
    info = digits.describe()
    assert info["train_images"] + info["val_images"] + info["test_images"] == 1797
    assert info["resolution"] == 32 and len(info["mean"]) == len(info["std"]) == 3


# ---------------------------------------------------------------- ImageFolder


@pytest.mark.parametrize("test_name", ["test", "val"])
def test_image_folder_with_train_and_test(tmp_path, test_name):
    data = load_dataset(_split_tree(tmp_path / "pets", test_name), 16)
    assert data.name == "pets" and data.classes == ["ant", "bee", "cat"] and data.flip is True
    assert all(x.shape[1:] == (3, 16, 16) and x.dtype == torch.uint8 for x in data.x.values())
    assert data.size("train") + data.size("val") == 18 and data.size("test") == 6
    assert torch.bincount(data.y["test"]).tolist() == [2, 2, 2]
    assert torch.bincount(data.y["val"], minlength=3).min() >= 1


def test_image_folder_labels_follow_sorted_folder_names(tmp_path):
    data = load_dataset(_split_tree(tmp_path / "pets"), 16)
    for split, tolerance in (("train", 0), ("test", 3)):  # test images are JPEG
        for label, name in enumerate(data.classes):
            images = data.x[split][data.y[split] == label].float()
            expected = torch.tensor(COLOURS[name], dtype=torch.float32).view(1, 3, 1, 1)
            assert (images - expected).abs().max() <= tolerance


def test_single_folder_is_split_deterministically(tmp_path):
    root = _single_tree(tmp_path / "flat")
    data = load_dataset(root, 16)
    assert data.classes == ["a", "b", "c"]
    assert sum(data.size(s) for s in ("train", "val", "test")) == 15
    assert torch.bincount(data.y["test"], minlength=3).min() >= 1
    assert torch.bincount(data.y["val"], minlength=3).min() >= 1
    _assert_same(data, load_dataset(root, 16))


def test_flip_can_be_overridden(tmp_path):
    assert load_dataset(_single_tree(tmp_path / "flat"), 16, flip=False).flip is False


# ---------------------------------------------------------------- CIFAR python folder

CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _cifar_batch(n, seed):
    rng = np.random.default_rng(seed)
    return {b"batch_label": b"fake batch", b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"labels": [i % 10 for i in range(n)], b"filenames": [f"img{i}.png".encode() for i in range(n)]}


def _write_cifar(root, protocol=pickle.DEFAULT_PROTOCOL):
    root.mkdir()
    batches = {f"data_batch_{i}": _cifar_batch(10, i) for i in range(1, 6)} | {"test_batch": _cifar_batch(20, 9)}
    batches["batches.meta"] = {b"label_names": [n.encode() for n in CIFAR_NAMES], b"num_vis": 3072}
    for name, content in batches.items():
        with (root / name).open("wb") as handle:
            pickle.dump(content, handle, protocol=protocol)
    return root


@pytest.mark.parametrize("protocol", sorted({pickle.DEFAULT_PROTOCOL, pickle.HIGHEST_PROTOCOL}))
def test_cifar_folder(tmp_path, protocol):
    data = load_dataset(_write_cifar(tmp_path / "cifar-10-batches-py", protocol), 32)
    assert data.classes == CIFAR_NAMES and data.flip is True
    assert data.size("train") + data.size("val") == 50 and data.size("test") == 20
    assert torch.bincount(data.y["val"], minlength=10).min() >= 1
    assert torch.bincount(data.y["test"]).tolist() == [2] * 10
    expected = torch.from_numpy(_cifar_batch(20, 9)[b"data"]).view(20, 3, 32, 32)
    assert torch.equal(data.x["test"], expected)


def test_cifar_folder_resized(tmp_path):
    data = load_dataset(_write_cifar(tmp_path / "cifar"), 16)
    assert all(x.shape[1:] == (3, 16, 16) for x in data.x.values())


class _Exploit:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        import os

        return os.system, (f"echo hacked > {self.target}",)


def test_cifar_malicious_pickle_is_refused_and_not_run(tmp_path):
    root = _write_cifar(tmp_path / "cifar")
    target = tmp_path / "somefile"
    with (root / "data_batch_1").open("wb") as handle:
        pickle.dump({b"data": _Exploit(target), b"labels": [0]}, handle)
    _error(root, root / "data_batch_1")
    assert not target.exists()


def test_cifar_missing_test_batch(tmp_path):
    root = _write_cifar(tmp_path / "cifar")
    (root / "test_batch").unlink()
    _error(root, "test_batch", root)


# ---------------------------------------------------------------- .npz


def _constant_images(labels, shape):
    """One constant image per label, of value 40 * label + 5."""
    return np.stack([np.full(shape, 40 * label + 5, np.uint8) for label in labels])


def _write_npz(path, shape=(20, 24, 3), *, as_float=False, **overrides):
    y_train, y_test = np.repeat(np.arange(3), 6), np.repeat(np.arange(3), 2)
    arrays = {"x_train": _constant_images(y_train, shape), "y_train": y_train[:, None],
              "x_test": _constant_images(y_test, shape), "y_test": y_test[:, None]}
    if as_float:
        arrays["x_train"], arrays["x_test"] = arrays["x_train"] / 255.0, arrays["x_test"] / 255.0
    arrays = {k: v for k, v in (arrays | overrides).items() if v is not None}
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(("shape", "as_float"), [((20, 24, 3), False), ((20, 24), False), ((20, 24, 3), True),
                                                 ((3, 20, 24), False), ((20, 24, 1), True)])
def test_npz_layouts_are_loaded_and_resized(tmp_path, shape, as_float):
    data = load_dataset(_write_npz(tmp_path / "arrays.npz", shape, as_float=as_float), 16)
    assert data.name == "arrays.npz" and data.classes == ["0", "1", "2"]
    assert data.size("train") + data.size("val") == 18 and data.size("test") == 6
    for split in ("train", "val", "test"):
        assert data.x[split].shape[1:] == (3, 16, 16) and data.x[split].dtype == torch.uint8
        expected = (40 * data.y[split] + 5).view(-1, 1, 1, 1).expand_as(data.x[split])
        assert torch.equal(data.x[split].long(), expected)


def test_npz_class_names(tmp_path):
    path = _write_npz(tmp_path / "named.npz", classes=np.array(["red", "green", "blue"]))
    assert load_dataset(path, 16).classes == ["red", "green", "blue"]


# ---------------------------------------------------------------- bad data


def test_missing_path(tmp_path):
    _error(tmp_path / "nowhere", tmp_path / "nowhere")


def test_empty_class_folder(tmp_path):
    root = _single_tree(tmp_path / "flat")
    (root / "empty").mkdir()
    _error(root, root / "empty")


def test_non_image_file_in_class_folder(tmp_path):
    root = _single_tree(tmp_path / "flat")
    (root / "a" / "notes.txt").write_text("not a picture")
    _error(root, root / "a" / "notes.txt")


def test_corrupt_image(tmp_path):
    root = _single_tree(tmp_path / "flat")
    (root / "b" / "broken.png").write_bytes(np.random.default_rng(0).integers(0, 256, 500, np.uint8).tobytes())
    _error(root, root / "b" / "broken.png")


def test_fewer_than_two_classes(tmp_path):
    root = tmp_path / "lonely"
    _write_images(root / "only", 6)
    _error(root, "lonely", "at least 2")


def test_class_without_test_images(tmp_path):
    root = _split_tree(tmp_path / "pets")
    _write_images(root / "train" / "dog", 6)
    _error(root, "'dog'", root / "test" / "dog")


def test_class_folder_with_too_few_images(tmp_path):
    root = _single_tree(tmp_path / "flat")
    _write_images(root / "tiny", 2)
    _error(root, root / "tiny")


def test_npz_missing_y_test(tmp_path):
    path = _write_npz(tmp_path / "partial.npz", y_test=None)
    _error(path, path, "'y_test'")


def test_npz_label_count_differs_from_image_count(tmp_path):
    path = _write_npz(tmp_path / "uneven.npz", y_train=np.zeros(5, np.int64))
    _error(path, path, "y_train")


@pytest.mark.parametrize("keep", [0.0, 0.5])
def test_empty_or_truncated_npz(tmp_path, keep):
    path = _write_npz(tmp_path / "cut.npz")
    content = path.read_bytes()
    path.write_bytes(content[:int(len(content) * keep)])
    _error(path, path)


def test_bad_val_fraction(tmp_path):
    _error(None, "0.6", val_fraction=0.6)


# ---------------------------------------------------------------- batches and augmentation


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    rng = np.random.default_rng(3)
    path = tmp_path_factory.mktemp("small") / "small.npz"
    np.savez(path, x_train=rng.integers(0, 256, (36, 8, 8, 3), dtype=np.uint8), y_train=np.arange(36) % 3,
             x_test=rng.integers(0, 256, (12, 8, 8, 3), dtype=np.uint8), y_test=np.arange(12) % 3)
    return load_dataset(path, 8)


def _collect(iterator):
    xs, ys = zip(*iterator, strict=True)
    return torch.cat(xs), torch.cat(ys)


@pytest.mark.parametrize("train", [False, True])
def test_batches_of_chosen_classes_only(small, train):
    _, y = _collect(batches(small, "train", 5, classes=[0, 2], train=train, generator=torch.Generator()))
    assert set(y.tolist()) == {0, 2}
    assert len(y) == count_images(small, "train", [0, 2]) < small.size("train")


def test_training_batches_repeat_with_equal_seeds(small):
    first = list(batches(small, "train", 7, train=True, generator=torch.Generator().manual_seed(5)))
    second = list(batches(small, "train", 7, train=True, generator=torch.Generator().manual_seed(5)))
    assert len(first) == len(second) > 1
    for (xa, ya), (xb, yb) in zip(first, second, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_training_batches_keep_shape_and_are_float(small):
    for x, y in batches(small, "train", 8, train=True, generator=torch.Generator().manual_seed(1)):
        assert x.dtype == torch.float32 and x.shape[1:] == (3, 8, 8) and len(x) == len(y) <= 8


def test_drop_last(small):
    sizes = [len(y) for _, y in batches(small, "train", 5, drop_last=True)]
    assert sizes and set(sizes) == {5} and sum(sizes) == small.size("train") // 5 * 5


def test_test_batches_hold_every_image_once_in_order(small):
    x, y = _collect(batches(small, "test", 5))
    assert torch.equal(y, small.y["test"]) and count_images(small, "test") == len(y) == 12
    assert torch.allclose(x, normalize(small.x["test"], small.mean, small.std))


def test_flip_mirrors_some_images():
    x = torch.arange(8, dtype=torch.uint8).view(1, 1, 1, 8).expand(64, 3, 5, 8).contiguous()
    out = augment(x, torch.Generator().manual_seed(0), flip=True, pad=0)
    mirrored = torch.tensor([torch.equal(o, x[0].flip(2)) for o in out])
    unchanged = torch.tensor([torch.equal(o, x[0]) for o in out])
    assert out.shape == x.shape and out.dtype == torch.uint8
    assert bool((mirrored | unchanged).all()) and 0 < int(mirrored.sum()) < 64


def test_padded_crops_stay_inside_the_padded_image():
    pad, x = 2, torch.full((64, 3, 8, 8), 200, dtype=torch.uint8)
    out = augment(x, torch.Generator().manual_seed(0), flip=False, pad=pad)
    assert out.shape == x.shape and set(out.unique().tolist()) <= {0, 200}
    inside = out[:, 0] == 200
    rows, cols = inside.any(2), inside.any(1)
    assert torch.equal(inside, rows[:, :, None] & cols[:, None, :])  # the image is one rectangle, zeros around it
    assert bool((out[:, :1] == out).all())
    assert int(rows.sum(1).min()) >= 8 - pad and int(cols.sum(1).min()) >= 8 - pad
    assert bool((~inside).any())  # some crops did move
    for mask in (*rows, *cols):  # an offset leaves zeros on one side only
        assert _block_at_an_edge(mask)


def _block_at_an_edge(mask: torch.Tensor) -> bool:
    ones = torch.nonzero(mask).flatten()
    contiguous = len(ones) > 0 and int(ones[-1] - ones[0] + 1) == len(ones)
    return contiguous and (int(ones[0]) == 0 or int(ones[-1]) == len(mask) - 1)


def test_a_tree_beyond_the_memory_limit_streams_the_same_batches(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", 8), ("test", 3)):
        for name in ("cat", "dog", "owl"):
            folder = tmp_path / "tree" / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    cached = load_dataset(tmp_path / "tree", 16, memory_gb=8.0)
    streamed = load_dataset(tmp_path / "tree", 16, memory_gb=0.0, workers=1)
    assert cached.files is None and streamed.files is not None and streamed.x == {}
    assert streamed.describe()["streamed"] and streamed.size("train") == cached.size("train")
    assert streamed.mean == pytest.approx(cached.mean, abs=0.02)
    for split in ("train", "val", "test"):
        assert torch.equal(streamed.y[split], cached.y[split])
        a = list(batches(cached, split, 5, classes=[0, 2]))
        b = list(batches(streamed, split, 5, classes=[0, 2]))
        assert len(a) == len(b)
        for (x1, y1), (x2, y2) in zip(a, b, strict=True):
            assert torch.equal(x1, x2) and torch.equal(y1, y2)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for (x1, _), (x2, _) in zip(batches(cached, "train", 4, generator=g1, train=True),
                                batches(streamed, "train", 4, generator=g2, train=True), strict=True):
        assert torch.equal(x1, x2)  # augmentation is the same code on the same uint8 batch


def test_a_streamed_tree_still_refuses_a_corrupt_image_at_load(tmp_path):
    from PIL import Image

    for split in ("train", "test"):
        for name in ("a", "b"):
            folder = tmp_path / split / name
            folder.mkdir(parents=True)
            for i in range(3):
                Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / f"{i}.png")
    (tmp_path / "train" / "a" / "bad.png").write_bytes(b"not a png at all")
    (tmp_path / "test" / "b" / "worse.png").write_bytes(b"nor this one")
    with pytest.raises(EdgeNASError, match=r"2 problems(.|\n)*cannot read image .*bad\.png.*\n.*worse\.png"):
        load_dataset(tmp_path, 16, memory_gb=0.0)


def test_a_class_balanced_subset_is_fixed_and_capped(tmp_path):
    full = load_dataset(None, 16)
    small = load_dataset(None, 16, train_per_class=20, test_per_class=5)
    assert torch.bincount(small.y["test"]).tolist() == [5] * 10
    assert (torch.bincount(small.y["train"]) + torch.bincount(small.y["val"])).tolist() == [20] * 10
    again = load_dataset(None, 16, train_per_class=20, test_per_class=5)
    assert torch.equal(small.x["train"], again.x["train"]) and small.size("test") < full.size("test")
    with pytest.raises(EdgeNASError, match="bad train images per class 1"):
        load_dataset(None, 16, train_per_class=1)


def test_decoded_trees_are_cached_and_a_changed_file_is_decoded_again(tmp_path, monkeypatch):
    import os

    monkeypatch.setenv("EDGENAS_CACHE_DIR", str(tmp_path / "cache"))
    for split in ("train", "test"):
        for name in ("a", "b"):
            folder = tmp_path / "tree" / split / name
            folder.mkdir(parents=True)
            for i in range(3):
                Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(folder / f"{i}.png")
    first = load_dataset(tmp_path / "tree", 16)
    cached = list((tmp_path / "cache" / "images").glob("*.pt"))
    assert len(cached) == 2  # one per split
    assert torch.equal(load_dataset(tmp_path / "tree", 16).x["test"], first.x["test"])
    changed = tmp_path / "tree" / "test" / "a" / "0.png"
    Image.fromarray(np.full((8, 8, 3), 250, np.uint8)).save(changed)
    os.utime(changed, ns=(10**18, 10**18))
    assert not torch.equal(load_dataset(tmp_path / "tree", 16).x["test"], first.x["test"])


# ---------------------------------------------------------------- messy data: every problem at once; small classes


def _messy(root, corrupt=1):
    """A flat tree as a newcomer has one: JPEG and PNG classes (a grey PNG among them, which converts), an empty
    class, a class of 2 images, a text file, and `corrupt` truncated JPEGs (their headers read, their data not)."""
    _write_images(root / "ant", 6, suffix="jpg", seed=1)
    _write_images(root / "bee", 6, seed=2)
    Image.fromarray(np.zeros((24, 20), np.uint8)).save(root / "bee" / "grey.png")
    (root / "empty").mkdir()
    _write_images(root / "pair", 2, seed=3)
    (root / "ant" / "notes.txt").write_text("not a picture")
    jpeg = (root / "ant" / "img0.jpg").read_bytes()
    for i in range(corrupt):
        (root / "ant" / f"broken{i:02d}.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    return root


def test_search_names_every_data_problem_in_one_run(tmp_path, monkeypatch):
    # Issue 33: search named one data problem per run (the empty class; after a fix, the corrupt file...).
    root = _messy(tmp_path / "messy")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["search", "--data", str(root), "--space", "tiny", "--out", "run"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = result.stderr.rstrip().splitlines()
    assert lines[0] == "error: dataset messy has 4 problems (each on a line below); fix them all, then run again:"
    problems = [f"{root / 'ant' / 'notes.txt'} is not an image file (expected one of", f"class folder {root / 'empty'} "
                "is empty", f"class folder {root / 'pair'} has fewer than 3 images", f"cannot read image "
                f"{root / 'ant' / 'broken00.jpg'}: "]
    assert len(lines) == 1 + len(problems)
    for problem in problems:
        assert sum(line.startswith(f"  {problem}") for line in lines) == 1, (problem, lines)
    assert not (tmp_path / "run").exists()


def test_a_long_list_of_data_problems_is_cut_with_a_count(tmp_path):
    with pytest.raises(EdgeNASError) as info:
        load_dataset(_messy(tmp_path / "messy", corrupt=23), 16)
    lines = str(info.value).splitlines()
    assert lines[0].startswith("dataset messy has 26 problems")
    assert len(lines) == 22 and lines[-1] == "  and 6 more" and lines[-2].endswith(".jpg: Truncated File Read")


def test_a_train_test_tree_names_every_problem_at_once(tmp_path):
    root = _split_tree(tmp_path / "pets")
    _write_images(root / "train" / "dog", 6)  # no test/dog
    (root / "test" / "ant" / "img0.jpg").write_bytes(b"garbage")
    (root / "train" / "bee" / "labels.csv").write_text("a,b")
    with pytest.raises(EdgeNASError) as info:
        load_dataset(root, 16)
    lines = str(info.value).splitlines()
    assert lines[0].startswith("dataset pets has 3 problems") and len(lines) == 4
    for fragment in ("class 'dog' has no test images", "labels.csv is not an image file",
                     f"cannot read image {root / 'test' / 'ant' / 'img0.jpg'}"):
        assert sum(fragment in line for line in lines) == 1, fragment


def test_a_class_with_fewer_than_20_images_gets_a_note(tmp_path):
    root = tmp_path / "flat"
    _write_images(root / "big", 20, seed=0)
    _write_images(root / "small", 19, seed=1)
    data = load_dataset(root, 16)
    assert len(data.notes) == 1 and data.describe()["notes"] == data.notes
    assert data.notes[0].startswith("class 'small' (19 images: 13 training, 2 search-validation, 4 test) has fewer "
                                    "than 20 images;") and "'big'" not in data.notes[0]
    _write_images(root / "small", 20, seed=1)
    assert load_dataset(root, 16).notes == []


def test_search_warns_of_a_class_of_3_images_and_records_it(tmp_path):
    # Issue 33: a class with 3 images (1 training, 1 search-validation, 1 test) trained without a word.
    root = tmp_path / "few"
    for name, count in (("ant", 25), ("bee", 25), ("fly", 3)):
        _write_images(root / name, count, seed=len(name) + count)
    result = CliRunner().invoke(app, ["search", "--data", str(root), "--space", "tiny", "--schedule", "1.0:1",
                                      "--probe-epochs", "0", "--warmup-epochs", "0", "--score-paths", "8",
                                      "--retrain-epochs", "0", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    warning = "warning: class 'fly' (3 images: 1 training, 1 search-validation, 1 test) has fewer than 20 images"
    assert warning in result.stderr and "add images (20 or more per class)" in result.stderr
    notes = json.loads((tmp_path / "run" / "config.json").read_text())["resolved"]["data"]["notes"]
    assert len(notes) == 1 and notes[0].startswith("class 'fly' (3 images")


def test_a_subset_of_a_tree_decodes_only_its_images_and_equals_the_whole_tree_subset(tmp_path, monkeypatch):
    """`--train-per-class` on an image folder decoded every image of the tree before keeping a few (12 a class of
    CIFAR-10 decoded all 60,000). The subset is now chosen from the file lists: the same images, labels and splits as
    subsetting the decoded tree, and only the kept images are decoded."""
    from edgenas.data import cache, splits
    from edgenas.data.readers import read_image_folder

    for i, name in enumerate(("cat", "dog", "owl")):
        _write_images(tmp_path / "tree" / "train" / name, 9, seed=i)
        _write_images(tmp_path / "tree" / "test" / name, 4, seed=10 + i)
    decoded = []
    real_decode = cache.decode
    monkeypatch.setattr(cache, "decode", lambda file, resolution: decoded.append(file) or real_decode(file, resolution))
    small = load_dataset(tmp_path / "tree", 16, train_per_class=3, test_per_class=2)
    assert len(decoded) == 3 * 3 + 3 * 2  # the kept images, no others
    whole_classes, whole = read_image_folder(tmp_path / "tree", 16, 0.2, 10**9)  # every image decoded, as before
    assert small.classes == whole_classes
    x_train, y_train = splits.subset(*whole["train"], 3, 3)
    x_test, y_test = splits.subset(*whole["test"], 2, 3)
    assert torch.equal(torch.cat([small.x["train"], small.x["val"]]).sort(0).values, x_train.sort(0).values)
    assert torch.equal(small.x["test"], x_test) and torch.equal(small.y["test"], y_test)
    assert sorted(torch.cat([small.y["train"], small.y["val"]]).tolist()) == sorted(y_train.tolist())
