"""One regression test (or a few) per defect of the integrity review; each failed before its fix.

Test names start with ``test_defect_NN_`` after the number the review gave the defect.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import msgpack
import numpy as np
import pytest
from jax.experimental import checkify

from jaxembed import checkpoint, datasets, ops, text, viz
from jaxembed.checkpoint import CheckpointError
from jaxembed.datasets import DatasetError
from jaxembed.text import TextVectorizer

ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# ------------------------------------------------ 3, 4: sharded (orbax) checkpoints
def test_defect_03_a_crash_inside_an_overwriting_sharded_save_keeps_the_old_checkpoint(tmp_path):
    path = tmp_path / "ckpt"
    checkpoint.save_checkpoint(path, {"t": jnp.full((64, 8), 1.0)})
    # The process dies as soon as orbax has been handed the data (before the write is
    # committed). The old code had orbax delete the old folder first (force=True).
    result = run_python(f"""
        import os
        import jax.numpy as jnp
        import orbax.checkpoint as ocp
        from jaxembed import checkpoint
        original = ocp.StandardCheckpointer.save
        def save_then_die(self, *args, **kwargs):
            original(self, *args, **kwargs)
            os._exit(3)
        ocp.StandardCheckpointer.save = save_then_die
        checkpoint.save_checkpoint({str(path)!r}, {{"t": jnp.full((64, 8), 2.0)}}, overwrite=True)
    """)
    assert result.returncode == 3, result.stderr
    restored = checkpoint.restore_checkpoint(path, like={"t": jnp.zeros((64, 8))})
    assert float(restored["t"][0, 0]) == 1.0
    # The next save cleans up what the crash left and replaces the checkpoint.
    checkpoint.save_checkpoint(path, {"t": jnp.full((64, 8), 3.0)}, overwrite=True)
    assert float(checkpoint.restore_checkpoint(path, like={"t": jnp.zeros((64, 8))})["t"][0, 0]) == 3.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_defect_03_a_kill_between_the_two_renames_is_recovered_on_restore(tmp_path):
    path = tmp_path / "ckpt"
    checkpoint.save_checkpoint(path, {"t": jnp.full((8, 2), 5.0)})
    os.rename(path, tmp_path / ".ckpt.old-abc123")  # what a kill after the first rename leaves
    restored = checkpoint.restore_checkpoint(path, like={"t": jnp.zeros((8, 2))})
    assert float(restored["t"][0, 0]) == 5.0 and path.is_dir()


def _data_files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file() and "/d/" in p.as_posix())


def test_defect_04_a_flipped_bit_in_a_sharded_checkpoint_is_refused(tmp_path):
    like = {"t": jnp.zeros((64, 8))}
    for position in range(0, 200, 37):
        path = checkpoint.save_checkpoint(tmp_path / f"c{position}", {"t": jnp.arange(512.0).reshape(64, 8)})
        for target in _data_files(path)[:2]:
            raw = bytearray(target.read_bytes())
            raw[position % len(raw)] ^= 0x10
            target.write_bytes(bytes(raw))
        with pytest.raises(CheckpointError, match=r"is corrupted: .*d/\w+ has another SHA-256"):
            checkpoint.restore_checkpoint(path, like=like)


def test_defect_04_not_a_checkpoint_or_damaged_metadata_is_a_checkpoint_error(tmp_path):
    like = {"t": jnp.zeros((4, 2))}
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("hello")
    with pytest.raises(CheckpointError, match=r"junk.*no integrity manifest"):
        checkpoint.restore_checkpoint(junk, like=like)
    with pytest.raises(CheckpointError, match=r"junk.*is not a readable orbax checkpoint"):
        checkpoint.restore_checkpoint(junk, like=like, verify=False)
    path = checkpoint.save_checkpoint(tmp_path / "c", {"t": jnp.ones((4, 2))})
    (path / "_METADATA").write_text("{ not json")
    with pytest.raises(CheckpointError, match=r"_METADATA has \d+ bytes|_METADATA has another SHA-256"):
        checkpoint.restore_checkpoint(path, like=like)
    with pytest.raises(CheckpointError, match=r"is not a readable orbax checkpoint"):
        checkpoint.restore_checkpoint(path, like=like, verify=False)
    (path / "jaxembed_manifest.json").write_text("[]")
    with pytest.raises(CheckpointError, match=r"jaxembed_manifest.json is corrupted"):
        checkpoint.restore_checkpoint(path, like=like)


def test_defect_04_values_changed_consistently_are_caught_by_the_array_checksum(tmp_path):
    # Someone rewrites the data *and* the file checksums: the per-array SHA-256 still differs.
    path = checkpoint.save_checkpoint(tmp_path / "c", {"t": jnp.ones((4, 2))})
    manifest = json.loads((path / "jaxembed_manifest.json").read_text())
    other = checkpoint.save_checkpoint(tmp_path / "d", {"t": jnp.zeros((4, 2))})
    forged = json.loads((other / "jaxembed_manifest.json").read_text())
    forged["arrays"] = manifest["arrays"]
    (other / "jaxembed_manifest.json").write_text(json.dumps(forged))
    with pytest.raises(CheckpointError, match=r"restored values of t do not match the SHA-256"):
        checkpoint.restore_checkpoint(other, like={"t": jnp.zeros((4, 2))})


# ------------------------------------------------ 5: aclImdb tarballs
def _acl_tarball(path: Path, mode: str, reviews: int = 12) -> Path:
    with tarfile.open(path, mode) as archive:
        for i in range(reviews):
            for label in ("neg", "pos"):
                data = f"review {i} is {label} ".encode() * 30
                info = tarfile.TarInfo(f"aclImdb/train/{label}/{i}_1.txt")
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return path


def test_defect_05_a_damaged_gzip_crc_is_refused(tmp_path):
    tarball = _acl_tarball(tmp_path / "acl.tar.gz", "w:gz")
    assert len(datasets.load_aclimdb(tarball)) == 24
    raw = bytearray(tarball.read_bytes())
    raw[-6] ^= 0xFF  # the CRC-32 in the gzip trailer: tarfile alone never reads it
    tarball.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match=r"acl.tar.gz.*not a readable tar archive.*CRC"):
        datasets.load_aclimdb(tarball)


def test_defect_05_a_damaged_header_in_a_plain_tar_is_refused_not_cut_short(tmp_path):
    tarball = _acl_tarball(tmp_path / "acl.tar", "w")
    raw = bytearray(tarball.read_bytes())
    with tarfile.open(tarball) as archive:
        third = archive.getmembers()[2].offset
    raw[third + 10] ^= 0x01  # the header's name: its checksum no longer matches
    tarball.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match=r"unreadable data after byte"):
        datasets.load_aclimdb(tarball)


def test_defect_05_damaged_xz_and_cut_files_are_dataset_errors(tmp_path):
    tarball = _acl_tarball(tmp_path / "acl.tar.xz", "w:xz")
    raw = tarball.read_bytes()
    damaged = tmp_path / "damaged.tar.xz"
    damaged.write_bytes(raw[:100] + bytes([raw[100] ^ 0x55]) + raw[101:])
    with pytest.raises(DatasetError, match=r"damaged.tar.xz.*LZMAError"):
        datasets.load_aclimdb(damaged)
    plain = _acl_tarball(tmp_path / "acl.tar", "w")
    with tarfile.open(plain) as archive:
        cut_at = archive.getmembers()[6].offset  # cut exactly at a member boundary
    cut = tmp_path / "cut.tar"
    cut.write_bytes(plain.read_bytes()[:cut_at])
    with pytest.raises(DatasetError, match=r"cut.tar.*truncated.*end-of-archive marker"):
        datasets.load_aclimdb(cut)
    with pytest.raises(DatasetError, match="Checksum mismatch"):
        datasets.load_aclimdb(plain, sha256="0" * 64)


# ------------------------------------------------ 7: Projector export as one unit
def test_defect_07_a_crash_between_projector_files_leaves_a_matching_set(tmp_path, monkeypatch):
    from jaxembed import _files

    viz.export_projector(np.zeros((3, 2)), ["a", "b", "c"], tmp_path)
    real_write_text = _files.write_text
    calls = []

    def crash_on_second_file(path, text):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated kill")
        return real_write_text(path, text)

    monkeypatch.setattr(_files, "write_text", crash_on_second_file)
    with pytest.raises(KeyboardInterrupt):
        viz.export_projector(np.ones((3, 2)), ["x", "y", "z"], tmp_path)
    monkeypatch.undo()
    config = (tmp_path / "projector_config.pbtxt").read_text()
    tensors = config.split('tensor_path: "')[1].split('"')[0]
    labels = config.split('metadata_path: "')[1].split('"')[0]
    assert (tmp_path / tensors).read_text().splitlines() == ["0\t0"] * 3
    assert (tmp_path / labels).read_text().split() == ["a", "b", "c"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries left


# ------------------------------------------------ 8: nearest neighbours and NaN rows
@pytest.mark.parametrize("metric", ["cosine", "dot"])
def test_defect_08_nan_and_inf_rows_never_rank_above_finite_ones(metric):
    table = jnp.array([[1.0, 0.0], [jnp.nan, 1.0], [0.5, 0.5], [jnp.inf, 0.0], [-1.0, 0.0], [0.0, 1.0]])
    result = viz.nearest_neighbors(table, query_ids=[0], k=5, metric=metric)
    assert result.ids[0, :3].tolist() == [2, 5, 4]
    assert sorted(result.ids[0, 3:].tolist()) == [1, 3]
    assert np.isnan(np.asarray(result.scores[0, 3:])).all()
    jitted = jax.jit(lambda t: viz.nearest_neighbors(t, query_vectors=jnp.ones(2), k=2, metric=metric))(table)
    assert set(jitted.ids[0].tolist()) <= {0, 2, 4, 5}


# ------------------------------------------------ 9: one-hot lookup of non-finite tables
def test_defect_09_one_hot_lookup_equals_take_for_non_finite_tables():
    table = jnp.arange(12.0).reshape(6, 2)
    table = table.at[1, 0].set(jnp.inf).at[2, 1].set(jnp.nan).at[4, 0].set(-jnp.inf)
    ids = jnp.array([[0, 1, 2], [3, 4, 5]])
    take = ops.lookup(table, ids)
    one_hot = ops.lookup(table, ids, method="one_hot")
    np.testing.assert_array_equal(np.asarray(one_hot), np.asarray(take))  # NaN == NaN here
    weights = jnp.arange(12.0).reshape(2, 3, 2)
    grads = [
        jax.grad(lambda t, m=m: jnp.sum(ops.lookup(t, ids, method=m) * weights))(table)
        for m in ("take", "one_hot")
    ]
    np.testing.assert_array_equal(np.asarray(grads[0]), np.asarray(grads[1]))


def test_defect_09_one_hot_lookup_under_jit_and_vmap_mixes_finite_and_non_finite_tables():
    # A finite table takes the plain matmul and a non-finite one the exact path (a lax.cond on
    # the device); under vmap both run and each table of the batch gets its own answer.
    finite = jnp.arange(12.0).reshape(6, 2)
    broken = finite.at[3, 1].set(jnp.nan).at[5, 0].set(jnp.inf)
    ids = jnp.array([[0, 3, 5], [1, 2, 4]])
    for table in (finite, broken):
        jitted = jax.jit(lambda t: ops.lookup(t, ids, method="one_hot"))(table)
        np.testing.assert_array_equal(np.asarray(jitted), np.asarray(ops.lookup(table, ids)))
    batch = jnp.stack([finite, broken])
    mapped = jax.vmap(lambda t: ops.lookup(t, ids, method="one_hot"))(batch)
    expected = jax.vmap(lambda t: ops.lookup(t, ids))(batch)
    np.testing.assert_array_equal(np.asarray(mapped), np.asarray(expected))
    assert np.isfinite(np.asarray(mapped[0])).all() and np.isnan(np.asarray(mapped[1, 0, 1, 1]))


# ------------------------------------------------ 10: TextVectorizer.load
def _saved(tmp_path: Path, **changes) -> Path:
    path = TextVectorizer(output_sequence_length=3, vocabulary=["hi"]).save(tmp_path / "v.json")
    document = json.loads(path.read_text())
    for key, value in changes.items():
        if key.startswith("config_"):
            document["config"][key[7:]] = value
        elif value is None:
            del document[key]
        else:
            document[key] = value
    # A forger can recompute the (unkeyed) checksum: every key must still be checked.
    document["sha256"] = text._content_digest(document["config"], document.get("vocabulary"))
    path.write_text(json.dumps(document))
    return path


def test_defect_10_a_damaged_saved_vectorizer_is_refused(tmp_path):
    path = TextVectorizer(vocabulary=["good", "film"]).save(tmp_path / "v.json")
    path.write_text(path.read_text().replace('"good"', '"goad"'))
    with pytest.raises(ValueError, match=r"v.json.*is corrupted: the SHA-256"):
        TextVectorizer.load(path)


def test_defect_10_a_saved_vectorizer_cannot_make_load_read_another_file(tmp_path):
    with pytest.raises(ValueError, match=r"'vocabulary' must be a list of strings.*got str"):
        TextVectorizer.load(_saved(tmp_path, vocabulary="/etc/hostname"))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"config_output_mode": "bag"}, r"config key 'output_mode' is 'bag'"),
        ({"config_split": "comma"}, r"config key 'split' is 'comma'"),
        ({"config_sparse": "yes"}, r"config key 'sparse' is 'yes'; expected true or false"),
        ({"config_ngrams": "2"}, r"config key 'ngrams' is '2'"),
        ({"config_ngrams": 0}, r"`ngrams` must be None"),
        ({"config_ragged": True}, r"ragged=True"),
        ({"config_standardize": "upper"}, r"config key 'standardize' is 'upper'"),
        ({"config_max_tokens": "7"}, r"config key 'max_tokens' is '7'"),
        ({"vocabulary": None}, r"its keys are \['config', 'format', 'sha256', 'version'\]"),
        ({"config": [1, 2]}, r"'config' is list"),
        ({"vocabulary": ["hi"]}, r"must start with '' and '\[UNK\]'"),
        ({"vocabulary": ["", "[UNK]", "a", "a"]}, r"repeated tokens"),
    ],
)
def test_defect_10_load_validates_every_key(tmp_path, changes, message):
    with pytest.raises(ValueError, match=message):
        TextVectorizer.load(_saved(tmp_path, **changes))


# ------------------------------------------------ 13: clear errors
def test_defect_13_damaged_compressed_npz_is_a_dataset_error(tmp_path):
    path = tmp_path / "a.npz"
    np.savez_compressed(path, x=np.arange(5000) % 7)
    raw = path.read_bytes()
    start = raw.index(b"x.npy") + len(b"x.npy") + 40
    seen = set()
    for offset in range(0, 120, 3):
        damaged = bytearray(raw)
        damaged[start + offset] ^= 0xA5
        path.write_bytes(bytes(damaged))
        with pytest.raises(DatasetError, match=r"a.npz.*not a readable .npz archive") as error:
            datasets.read_npz(path)
        seen.add(str(error.value).split("(")[1].split(":")[0])
    # An unknown compression method (raw NotImplementedError before the fix).
    unknown = bytearray(raw)
    for header in (b"PK\x03\x04", b"PK\x01\x02"):
        at = unknown.index(header)
        field = at + (8 if header == b"PK\x03\x04" else 10)
        unknown[field : field + 2] = struct.pack("<H", 99)
    path.write_bytes(bytes(unknown))
    with pytest.raises(DatasetError, match=r"not a readable .npz archive.*NotImplementedError"):
        datasets.read_npz(path)


def _forged_checkpoint(path: Path, entry: dict) -> Path:
    payload = msgpack.packb({"version": 1, "leaves": {"['t']": entry}, "metadata": {}}, use_bin_type=True)
    path.write_bytes(b"JAXEMBED-CKPT\x00" + hashlib.sha256(payload).digest() + payload)
    return path


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"dtype": "float32", "shape": [4, 2], "data": b"\0" * 8, "key_impl": None}, r"8 bytes of data"),
        ({"dtype": "float32", "shape": [4, 2]}, r"exactly 'dtype', 'shape', 'data' and 'key_impl'"),
        ({"dtype": 7, "shape": [4, 2], "data": b"", "key_impl": None}, r"dtype 7"),
        ({"dtype": "object", "shape": [1], "data": b"\0" * 8, "key_impl": None}, r"dtype 'object'"),
        ({"dtype": "float32", "shape": "4", "data": b"", "key_impl": None}, r"shape '4'"),
        ("not a map", r"must be a map"),
    ],
)
def test_defect_13_a_forged_checkpoint_with_a_valid_sha256_is_a_checkpoint_error(tmp_path, entry, message):
    # A single-file checkpoint of jaxembed 0.1 (still read, checked before the deprecation warning).
    path = _forged_checkpoint(tmp_path / "forged.jxe", entry)
    with pytest.raises(CheckpointError, match=r"forged.jxe.*is malformed: leaf \"\['t'\]\" .*" + message):
        checkpoint.restore_checkpoint(path, like={"t": jnp.zeros((4, 2))})


def test_defect_13_checkify_mode_on_an_empty_batch_under_jit():
    table = jnp.ones((4, 2))
    checked = checkify.checkify(jax.jit(lambda t, i: ops.lookup(t, i, invalid_ids="checkify")))
    error, out = checked(table, jnp.zeros((0,), jnp.int32))
    assert error.get() is None and out.shape == (0, 2)
    error, _ = checked(table, jnp.zeros((0, 3), jnp.int32))
    assert error.get() is None


def test_defect_13_load_imdb_names_a_bad_num_words(tmp_path):
    with pytest.raises(
        ValueError, match=r"`num_words` must be None or an integer >= 0. Received: num_words='5'"
    ):
        datasets.load_imdb(tmp_path / "imdb.npz", num_words="5")


# ------------------------------------------------ 14: bad input accepted silently
@pytest.mark.parametrize(
    ("argument", "value"),
    [("num_words", -1), ("skip_top", -2), ("index_from", -3), ("maxlen", -1), ("oov_char", 1.5)],
)
def test_defect_14_load_imdb_refuses_negative_counts(tmp_path, argument, value):
    with pytest.raises(ValueError, match=rf"`{argument}` must be .*Received: {argument}={value!r}"):
        datasets.load_imdb(tmp_path / "imdb.npz", **{argument: value})


def test_defect_14_load_text_folder_refuses_repeated_or_escaping_class_names(tmp_path):
    for name in ("pos", "neg"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "a.txt").write_text(name)
    with pytest.raises(ValueError, match=r"must not repeat a class.*\['pos'\]"):
        datasets.load_text_folder(tmp_path, class_names=["pos", "pos"])
    with pytest.raises(ValueError, match=r"names of subfolders"):
        datasets.load_text_folder(tmp_path / "pos", class_names=["../neg"])


def test_defect_14_csv_with_a_repeated_header_column_is_refused(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text,label,label\nhello,pos,neg\n")
    with pytest.raises(DatasetError, match=r"t.csv.*header column\(s\) \['label'\] more than once"):
        datasets.load_text_table(path)


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85"])
def test_defect_14_jsonl_strings_may_hold_unicode_line_separators(tmp_path, separator):
    path = tmp_path / "t.jsonl"
    rows = [{"text": f"one{separator}two", "label": "a"}, {"text": "three", "label": "b"}]
    path.write_text("\r\n".join(json.dumps(row, ensure_ascii=False) for row in rows) + "\n", newline="")
    data = datasets.load_text_table(path)
    assert data.texts == [f"one{separator}two", "three"] and data.class_names == ["a", "b"]


# ------------------------------------------------ 1, 15, 16, 13: Keras files
def _keras_model(rows: int = 20, dim: int = 4):
    import jaxembed
    from jaxembed.nn import KerasSequential

    layer = jaxembed.Embedding(rows, dim, rngs=0)
    layer.embeddings[...] = jnp.arange(rows * dim, dtype=jnp.float32).reshape(rows, dim) + 0.25
    return KerasSequential([layer, jaxembed.GlobalAveragePooling1D()])


def _hostile_weights(tmp_path: Path, kind: str) -> tuple[Path, Path]:
    import h5py

    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.full(80, 7.0, np.float32).tobytes())
    path = tmp_path / f"{kind}.weights.h5"
    with h5py.File(path, "w") as h5:
        h5.create_group("vars")
        group = h5.create_group("layers/embedding/vars")
        if kind == "external_storage":
            group.create_dataset("0", shape=(20, 4), dtype="f4", external=[(str(secret), 0, 320)])
        elif kind == "external_link":
            group["0"] = h5py.ExternalLink(str(tmp_path / "other.h5"), "/table")
            with h5py.File(tmp_path / "other.h5", "w") as other:
                other["table"] = np.full((20, 4), 7.0, np.float32)
        elif kind == "soft_link":
            h5["stash"] = np.full((20, 4), 7.0, np.float32)
            group["0"] = h5py.SoftLink("/stash")
        elif kind == "virtual":
            with h5py.File(tmp_path / "other.h5", "w") as other:
                other["table"] = np.full((20, 4), 7.0, np.float32)
            layout = h5py.VirtualLayout(shape=(20, 4), dtype="f4")
            layout[:] = h5py.VirtualSource(str(tmp_path / "other.h5"), "table", shape=(20, 4))
            group.create_virtual_dataset("0", layout)
    return path, secret


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("external_storage", r"dataset '/layers/embedding/vars/0' keeps its data in external files"),
        ("external_link", r"external link at '/layers/embedding/vars/0'"),
        ("soft_link", r"soft link at '/layers/embedding/vars/0' to '/stash'"),
        ("virtual", r"dataset '/layers/embedding/vars/0' is a virtual dataset"),
    ],
)
def test_defect_01_hdf5_files_cannot_make_the_loader_read_another_file(tmp_path, kind, message):
    from jaxembed.keras import io as keras_io

    path, _ = _hostile_weights(tmp_path, kind)
    for load in (keras_io.list_embeddings, keras_io.load_embedding):
        with pytest.raises(keras_io.KerasFileError, match=rf"{kind}.weights.h5.*" + message):
            load(path)
    # The same file inside a .keras archive (read from memory: relative names would resolve
    # against the working folder).
    archive = tmp_path / f"{kind}.keras"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("config.json", "{}")
        zipped.write(path, "model.weights.h5")
    with pytest.raises(keras_io.KerasFileError, match=message):
        keras_io.load_embedding(archive, input_dim=20, output_dim=4)


def _data_offset(raw: bytes, table: np.ndarray) -> int:
    return raw.index(np.ascontiguousarray(table).tobytes()[:64])


def test_defect_15_weights_files_carry_a_checksum_that_is_verified(tmp_path):
    import h5py

    from jaxembed.keras import io as keras_io

    model = _keras_model()
    path = tmp_path / "m.weights.h5"
    keras_io.save_weights(model, path)
    with h5py.File(path) as h5:
        assert h5["layers/embedding/vars/0"].fletcher32
    table = np.asarray(model.layers[0].embeddings[...])
    raw = path.read_bytes()
    start = _data_offset(raw, table)
    for offset in range(0, table.nbytes, table.nbytes // 15):
        damaged = bytearray(raw)
        damaged[start + offset] ^= 0x04
        path.write_bytes(bytes(damaged))
        with pytest.raises(keras_io.KerasFileError, match=r"cannot be read|damaged"):
            keras_io.load_embedding(path)


def test_defect_15_keras_reads_the_checksummed_weights_file(tmp_path):
    keras = pytest.importorskip("keras", reason="reading the file with Keras needs keras")
    from jaxembed.keras import io as keras_io

    model = _keras_model()
    path = tmp_path / "m.weights.h5"
    keras_io.save_weights(model, path)
    theirs = keras.Sequential([keras.Input((3,), dtype="int32"), keras.layers.Embedding(20, 4)])
    theirs.add(keras.layers.GlobalAveragePooling1D())
    theirs.load_weights(path)
    np.testing.assert_array_equal(
        theirs.layers[0].get_weights()[0], np.asarray(model.layers[0].embeddings[...])
    )


@pytest.mark.parametrize("member", ["../evil.txt", "/etc/evil", "assets/../../x", "..\\windows.txt"])
def test_defect_16_keras_archives_with_escaping_member_names_are_refused(tmp_path, member):
    from jaxembed.keras import io as keras_io

    path = tmp_path / "m.keras"
    keras_io.save_model(_keras_model(), path)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(member, "x")
    with pytest.raises(keras_io.KerasFileError, match=r"m.keras.*not a safe .keras archive.*member"):
        keras_io.load_model(path)


def test_defect_13_damaged_compressed_keras_archive_and_bad_config(tmp_path):
    from jaxembed.keras import io as keras_io

    plain = tmp_path / "plain.keras"
    keras_io.save_model(_keras_model(200, 16), plain)
    compressed = tmp_path / "c.keras"
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(compressed, "w", zipfile.ZIP_DEFLATED) as target:
        for name in source.namelist():
            target.writestr(name, source.read(name))
    raw = compressed.read_bytes()
    start = raw.index(b"model.weights.h5") + 60
    for offset in range(0, 400, 50):
        damaged = bytearray(raw)
        damaged[start + offset] ^= 0x5A
        compressed.write_bytes(bytes(damaged))
        with pytest.raises(keras_io.KerasFileError, match=r"c.keras"):
            keras_io.load_model(compressed)
    for config in ("[1, 2]", "3", '"text"'):
        path = tmp_path / "cfg.keras"
        with zipfile.ZipFile(plain) as source, zipfile.ZipFile(path, "w") as target:
            for name in source.namelist():
                target.writestr(name, config if name == "config.json" else source.read(name))
        with pytest.raises(keras_io.KerasFileError, match=r"cfg.keras.*config.json holds a JSON"):
            keras_io.load_model(path)


def test_defect_13_quantization_config_with_a_bad_block_size_names_it():
    import jaxembed

    with pytest.raises(
        ValueError, match=r"`quantization_config` must be .*Received: quantization_config='int4/abc'"
    ):
        jaxembed.Embedding(8, 4, quantization_config="int4/abc", rngs=0)


# ------------------------------------------------ 2, 12, 14: training callbacks
def _trainer(rows: int = 8):
    import optax

    import jaxembed
    from jaxembed.train import Trainer

    model = jaxembed.Embedding(rows, 2, rngs=0)
    return Trainer(model, optax.sgd(0.1), lambda m, ids: jnp.mean(m(ids) ** 2))


def test_defect_02_a_nan_epoch_never_replaces_the_best_checkpoint(tmp_path):
    from jaxembed.train import ModelCheckpoint

    trainer = _trainer()
    callback = ModelCheckpoint(tmp_path / "best-{epoch}", monitor="val_loss", save_best_only=True)
    for epoch, loss in enumerate([1.0, float("nan"), 2.0, float("-inf"), 0.5, float("nan")]):
        callback.on_epoch_end(epoch, {"val_loss": loss}, trainer)
    assert [Path(p).name for p in callback.saved] == ["best-1", "best-5"]  # {epoch} is 1-based, as in Keras
    assert callback.best == -0.5
    accuracy = ModelCheckpoint(tmp_path / "acc-{epoch}", monitor="val_acc", save_best_only=True)
    for epoch, value in enumerate([0.5, float("inf"), 0.7]):
        accuracy.on_epoch_end(epoch, {"val_acc": value}, trainer)
    assert [Path(p).name for p in accuracy.saved] == ["acc-1", "acc-3"]


def test_defect_02_early_stopping_never_counts_nan_or_inf_as_improvement():
    from jaxembed.train import EarlyStopping

    trainer = _trainer()
    stopper = EarlyStopping(monitor="loss", patience=2)
    stopper.on_train_begin(trainer)
    trainer.stop_training = False
    for epoch, loss in enumerate([1.0, float("-inf"), float("nan")]):
        stopper.on_epoch_end(epoch, {"loss": loss}, trainer)
    assert stopper.best == -1.0 and trainer.stop_training and stopper.stopped_epoch == 2


def test_defect_06_the_trainer_refuses_int64_ids_that_int32_would_wrap():
    trainer = _trainer(8)
    before = np.asarray(trainer.state.params["embeddings"][...]).copy()
    for ids in (np.array([2**32 + 1, 0], np.int64), np.array([2**31], np.uint64), np.array([-(2**31) - 1])):
        with pytest.raises(ValueError, match=rf"holds {int(ids[0])}, outside int32"):
            trainer.train_step(ids)
        with pytest.raises(ValueError, match=r"outside int32"):
            trainer.eval_step(ids)
    np.testing.assert_array_equal(
        np.asarray(trainer.state.params["embeddings"][...]), before
    )  # row 1 untouched
    trainer.train_step(np.array([1, 7], np.int64))  # ids that fit are fine


def test_defect_06_input_dim_above_int32_is_refused():
    import jaxembed

    with pytest.raises(
        ValueError, match=r"`input_dim` must be at most 2\*\*31 - 1 .* Received: input_dim=2147483648"
    ):
        jaxembed.Embedding(2**31, 2, rngs=0)


@pytest.mark.parametrize(
    "initializer",
    [
        lambda key, shape, dtype: jnp.zeros((5, 3), dtype),
        lambda key, shape, dtype: jnp.zeros((), dtype),
        lambda key, shape, dtype: jnp.zeros((8,), dtype),
        lambda key, shape, dtype: jnp.zeros(shape, jnp.complex64),
        lambda key, shape, dtype: np.zeros(shape, bool),
    ],
)
def test_defect_11_initializer_results_are_checked(initializer):
    import jaxembed

    with pytest.raises(
        ValueError, match=r"`embeddings_initializer` must return an array of shape .* \(4, 2\)"
    ):
        jaxembed.Embedding(4, 2, embeddings_initializer=initializer, rngs=0)


def test_defect_11_a_correct_custom_initializer_still_works():
    import jaxembed

    layer = jaxembed.Embedding(4, 2, embeddings_initializer=lambda k, s, d: jnp.ones(s, d), rngs=0)
    assert layer.embeddings[...].tolist() == [[1.0, 1.0]] * 4


def _diverging_trainer():
    import optax

    import jaxembed
    from jaxembed.train import Trainer

    model = jaxembed.Embedding(4, 2, rngs=0)
    return Trainer(model, optax.sgd(1e30), lambda m, ids: jnp.sum(m(ids) ** 4))


def test_defect_12_fit_warns_once_on_a_non_finite_loss():
    from jaxembed.train import fit

    with pytest.warns(RuntimeWarning, match=r"fit: the loss is (nan|inf) at step \d+") as caught:
        fit(_diverging_trainer(), [jnp.array([0, 1])] * 5, epochs=3, progress=False)
    assert len([w for w in caught if issubclass(w.category, RuntimeWarning)]) == 1


@pytest.mark.parametrize("how", ["callback", "argument"])
def test_defect_12_terminate_on_nan_stops_training(how):
    from jaxembed.train import TerminateOnNaN, fit

    trainer = _diverging_trainer()
    stopper = TerminateOnNaN()
    kwargs = {"callbacks": [stopper]} if how == "callback" else {"terminate_on_nan": True}
    with pytest.warns(RuntimeWarning, match="not finite"):
        history = fit(trainer, [jnp.array([0, 1])] * 4, epochs=50, progress=False, log_every=1, **kwargs)
    assert trainer.stop_training and len(history.epoch) == 1 and len(history.step_losses) < 4
    if how == "callback":
        assert stopper.stopped_step == len(history.step_losses)


def test_defect_14_complex_weights_are_refused():
    import jaxembed

    with pytest.raises(ValueError, match=r"`weights` must be real numbers.*complex128"):
        jaxembed.Embedding(2, 2, weights=np.ones((2, 2), complex))
    layer = jaxembed.Embedding(2, 2, rngs=0)
    with pytest.raises(ValueError, match=r"`weights` must be real numbers"):
        layer.set_weights([np.ones((2, 2), complex)])


@pytest.mark.parametrize("alpha", [float("nan"), float("inf"), -1.0])
def test_defect_14_lora_alpha_must_be_finite_and_positive(alpha):
    import jaxembed

    with pytest.raises(ValueError, match=r"`lora_alpha` must be a positive finite number"):
        jaxembed.Embedding(4, 2, rngs=0).enable_lora(2, lora_alpha=alpha)
    with pytest.raises(ValueError, match=r"`lora_alpha` must be a positive finite number"):
        jaxembed.Embedding(4, 2, lora_rank=2, lora_alpha=alpha, rngs=0)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"patience": -1}, r"`patience` must be a non-negative integer. Received: patience=-1"),
        (
            {"patience": "3"},
            r"`patience` must be a non-negative integer. Received: patience='3' \(of type str\)",
        ),
        ({"patience": 1.5}, r"`patience` must be a non-negative integer"),
        ({"min_delta": float("nan")}, r"`min_delta` must be a finite number"),
        ({"baseline": float("inf")}, r"`baseline` must be a finite number or None"),
    ],
)
def test_defect_14_early_stopping_arguments_are_checked(arguments, message):
    from jaxembed.train import EarlyStopping

    with pytest.raises(ValueError, match=message):
        EarlyStopping(**arguments)
