"""Every loader against damaged and hostile files: the documented error, or the exact original.

For each loader a valid file is made, then cut (several lengths), byte-flipped (positions
spread over the file), emptied, and replaced by a file of another format. A loader with a
checksum over its content must raise its documented error for every damage that changes
what it would return; a loader of a plain-text format without one (a Keras vocabulary
file, CSV) may load a different but well-formed result and says so in its docs. No
loader may raise anything else (``KeyError``, ``zlib.error``, ``AttributeError``, ...).

Hostile files (pickles that run code, path traversal in archives) must run nothing, read
nothing outside their file and write nothing anywhere.
"""

from __future__ import annotations

import dataclasses
import io
import json
import pickle
import random
import tarfile
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np
import pytest

from jaxembed import checkpoint, datasets
from jaxembed.checkpoint import CheckpointError
from jaxembed.datasets import DatasetError
from jaxembed.text import TextVectorizer


@dataclasses.dataclass(frozen=True)
class Loader:
    name: str
    make: Callable[[Path], Path]  # writes a valid file (or folder) under the given folder
    load: Callable[[Path], Any]  # returns something comparable with ==
    errors: tuple[type[BaseException], ...]  # what damage may raise
    checksummed: bool  # every damage that changes the result must raise


def _tree() -> dict[str, Any]:
    return {"table": jnp.arange(600.0).reshape(100, 6), "step": jnp.int32(3)}


def _as_lists(tree: Any) -> Any:
    return {key: np.asarray(value).tolist() for key, value in tree.items()}


def make_old_checkpoint(folder: Path) -> Path:
    """A single-file checkpoint of jaxembed 0.1 (read-only now)."""
    return checkpoint._write_old_file(folder / "c.jxe", _tree(), metadata={"step": 3})


def restore_old_checkpoint(path: Path) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "convert it with convert_checkpoint"
        return _as_lists(checkpoint.restore_checkpoint(path, like=_tree()))


def make_sharded(folder: Path) -> Path:
    return checkpoint.save_checkpoint(folder / "sharded", _tree())


def make_vectorizer(folder: Path) -> Path:
    return TextVectorizer(output_sequence_length=5, vocabulary=[f"w{i}" for i in range(80)]).save(
        folder / "v.json"
    )


def make_vocabulary(folder: Path) -> Path:
    return TextVectorizer(vocabulary=[f"w{i}" for i in range(80)]).save_vocabulary(folder / "v.txt")


def _rows(*rows: list[int]) -> np.ndarray:
    x = np.empty(len(rows), dtype=object)
    x[:] = [list(r) for r in rows]
    return x


def make_imdb(folder: Path) -> Path:
    path = folder / "imdb.npz"
    train = _rows(*[[1 + (i * j) % 50 for j in range(20)] for i in range(30)])
    test = _rows(*[[2 + (i * j) % 40 for j in range(15)] for i in range(20)])
    np.savez_compressed(path, x_train=train, y_train=np.arange(30) % 2, x_test=test, y_test=np.arange(20) % 2)
    return path


def make_word_index(folder: Path) -> Path:
    path = folder / "imdb_word_index.json"
    path.write_text(json.dumps({f"word{i}": i + 1 for i in range(200)}))
    return path


def make_acl(folder: Path) -> Path:
    path = folder / "acl.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for i in range(20):
            for label in ("neg", "pos"):
                data = f"review {i} {label} ".encode() * 10
                info = tarfile.TarInfo(f"aclImdb/train/{label}/{i}_1.txt")
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return path


def make_csv(folder: Path) -> Path:
    path = folder / "t.csv"
    path.write_text("text,label\n" + "".join(f'"text, number {i}",{i % 3}\n' for i in range(60)))
    return path


def make_jsonl(folder: Path) -> Path:
    path = folder / "t.jsonl"
    path.write_text("".join(json.dumps({"text": f"text {i}", "label": i % 2}) + "\n" for i in range(60)))
    return path


def _keras_model() -> Any:
    import jaxembed
    from jaxembed.nn import KerasSequential

    layer = jaxembed.Embedding(64, 8, rngs=0)
    layer.embeddings[...] = jnp.arange(512.0, dtype=jnp.float32).reshape(64, 8) / 7
    return KerasSequential([layer, jaxembed.GlobalAveragePooling1D()])


def make_weights(folder: Path) -> Path:
    from jaxembed.keras import io as keras_io

    keras_io.save_weights(_keras_model(), folder / "m.weights.h5")
    return folder / "m.weights.h5"


def make_keras(folder: Path) -> Path:
    from jaxembed.keras import io as keras_io

    keras_io.save_model(_keras_model(), folder / "m.keras")
    return folder / "m.keras"


def _keras_error() -> type[BaseException]:
    from jaxembed.keras import io as keras_io

    return keras_io.KerasFileError


def load_weights(path: Path) -> Any:
    from jaxembed.keras import io as keras_io

    return np.asarray(keras_io.load_embedding(path).embeddings[...]).tolist()


def load_keras(path: Path) -> Any:
    from jaxembed.keras import io as keras_io

    return np.asarray(keras_io.load_model(path).layers[0].embeddings[...]).tolist()


def _dataset(data: Any) -> Any:
    return data.texts, data.labels.tolist(), data.class_names


LOADERS = [
    Loader("load_embedding(.weights.h5)", make_weights, load_weights, (_keras_error(),), True),
    Loader("load_model(.keras)", make_keras, load_keras, (_keras_error(),), True),
    Loader(
        "restore_checkpoint(old .jxe file)",
        make_old_checkpoint,
        restore_old_checkpoint,
        (CheckpointError,),
        True,
    ),
    Loader(
        "restore_checkpoint",
        make_sharded,
        lambda p: _as_lists(checkpoint.restore_checkpoint(p, like=_tree())),
        (CheckpointError,),
        True,
    ),
    Loader(
        "TextVectorizer.load",
        make_vectorizer,
        lambda p: TextVectorizer.load(p).get_vocabulary(),
        (ValueError,),
        True,
    ),
    Loader(
        "TextVectorizer(vocabulary=file)",
        make_vocabulary,
        lambda p: TextVectorizer(vocabulary=p).get_vocabulary(),
        (ValueError,),
        False,  # Keras's one-token-a-line format has no checksum
    ),
    Loader(
        "load_imdb",
        make_imdb,
        lambda p: [[list(map(list, x)), y.tolist()] for x, y in datasets.load_imdb(p, seed=0)],
        (DatasetError,),
        True,  # zip CRC-32 over every member
    ),
    Loader(
        "imdb_word_index",
        make_word_index,
        datasets.imdb_word_index,
        (DatasetError,),
        False,  # a JSON file Keras lists by MD5: pass it through verify_file to check
    ),
    Loader("load_aclimdb", make_acl, lambda p: _dataset(datasets.load_aclimdb(p)), (DatasetError,), True),
    Loader(
        "load_text_table(csv)",
        make_csv,
        lambda p: _dataset(datasets.load_text_table(p)),
        (DatasetError,),
        False,
    ),
    Loader(
        "load_text_table(jsonl)",
        make_jsonl,
        lambda p: _dataset(datasets.load_text_table(p)),
        (DatasetError,),
        False,
    ),
]


def _main_file(path: Path) -> Path:
    """The file to damage: the path itself, or the largest data file of a folder."""
    if path.is_file():
        return path
    return max(
        (p for p in path.rglob("*") if p.is_file() and "/d/" in p.as_posix()), key=lambda p: p.stat().st_size
    )


def _check(loader: Loader, path: Path, original: Any, what: str) -> str:
    try:
        result = loader.load(path)
    except loader.errors as error:
        assert str(path.name) in str(error) or path.parent.name in str(error), (
            f"{loader.name}, {what}: the error does not name the file: {error}"
        )
        return "error"
    if result == original:
        return "same"
    assert not loader.checksummed, f"{loader.name}, {what}: a damaged file loaded different values"
    return "different"


@pytest.mark.parametrize("loader", LOADERS, ids=lambda loader: loader.name)
def test_damaged_files_raise_the_documented_error(loader, tmp_path):
    path = loader.make(tmp_path)
    original = loader.load(path)
    target = _main_file(path)
    raw = target.read_bytes()
    rng = random.Random(len(raw))
    outcomes = []
    for cut in sorted({1, 7, len(raw) // 3, len(raw) // 2, len(raw) - 1}):
        target.write_bytes(raw[: len(raw) - cut])
        outcomes.append(_check(loader, path, original, f"cut by {cut} bytes"))
    for _ in range(12):
        position = rng.randrange(len(raw))
        damaged = bytearray(raw)
        damaged[position] ^= 1 << rng.randrange(8)
        target.write_bytes(bytes(damaged))
        outcomes.append(_check(loader, path, original, f"bit flipped at byte {position}"))
    target.write_bytes(b"")
    assert _check(loader, path, original, "empty") in ("error", "different")
    target.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 3)  # another format entirely
    assert _check(loader, path, original, "another format") == "error"
    assert outcomes.count("error") > 0


# ------------------------------------------------------------------ hostile files
class _RunsCode:
    def __reduce__(self):
        return (Path.write_text, (Path(_MARKER[0]), "pwned"))


_MARKER: list[str] = [""]


def test_a_pickle_in_an_npz_runs_nothing(tmp_path):
    _MARKER[0] = str(tmp_path / "marker")
    payload = pickle.dumps(_RunsCode(), protocol=2)
    header = {"descr": "|O", "fortran_order": False, "shape": (1,)}
    stream = io.BytesIO()
    np.lib.format.write_array_header_1_0(stream, header)
    path = tmp_path / "evil.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x_train.npy", stream.getvalue() + payload)
    with pytest.raises(DatasetError, match=r"evil.npz' member 'x_train.npy': Refusing to unpickle"):
        datasets.read_npz(path)
    with pytest.raises(DatasetError, match=r"Refusing to unpickle"):
        datasets.load_imdb(path)
    assert not (tmp_path / "marker").exists()


def test_path_traversal_in_a_tarball_writes_and_reads_nothing_outside(tmp_path):
    path = tmp_path / "acl.tar.gz"
    outside = tmp_path / "outside.txt"
    with tarfile.open(path, "w:gz") as archive:
        for name, data in [
            ("aclImdb/train/pos/0_9.txt", b"good"),
            ("aclImdb/train/neg/1_1.txt", b"bad"),
            ("../outside.txt", b"written outside"),
            ("/tmp/absolute.txt", b"absolute"),
            ("aclImdb/train/../../../evil/pos/2_9.txt", b"escaping"),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("aclImdb/train/pos/3_9.txt")  # a symlink to a file outside
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(link)
    before = sorted(p.name for p in tmp_path.iterdir())
    data = datasets.load_aclimdb(path)
    assert sorted(data.texts) == ["bad", "good"]  # read in place; outside names and the link are not reviews
    assert not any("root:" in text for text in data.texts)
    assert sorted(p.name for p in tmp_path.iterdir()) == before and not outside.exists()


def test_symlinked_class_files_are_read_only_inside_the_folder(tmp_path):
    (tmp_path / "pos").mkdir()
    (tmp_path / "neg").mkdir()
    (tmp_path / "pos" / "a.txt").write_text("fine")
    (tmp_path / "neg" / "b.txt").write_text("bad")
    with pytest.raises(ValueError, match=r"names of subfolders"):
        datasets.load_text_folder(tmp_path, class_names=["/etc"])


def test_a_sharded_checkpoint_with_files_added_is_refused(tmp_path):
    path = checkpoint.save_checkpoint(tmp_path / "c", {"t": jnp.ones(3)})
    (path / "d" / "extra").write_bytes(b"\0" * 10)
    with pytest.raises(CheckpointError, match=r"files not in the manifest: d/extra"):
        checkpoint.restore_checkpoint(path, like={"t": jnp.zeros(3)})
