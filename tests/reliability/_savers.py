"""Every save function of jaxembed, as ``save(version)(folder)`` / ``load(folder) -> version`` pairs.

The kill tests (``test_kill.py``) run ``save`` in a loop in a child process and SIGKILL it;
``load`` then reads what is on disk in the test process and returns the version it holds,
after checking that the content is all of one version (so a mix of two saves, or a
half-written file that a loader accepted, fails). Nothing here touches JAX at import time:
the module is preloaded into a fork server, and JAX must not start threads before a fork.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def keras_io() -> Any:
    from jaxembed.keras import io

    return io


def keras_sequential() -> Any:
    from jaxembed.nn import KerasSequential

    return KerasSequential


Writer = Callable[[Path], Any]


@dataclasses.dataclass(frozen=True)
class Saver:
    name: str
    save: Callable[[int], Writer]  # builds version N (not timed as writing); returns what writes it
    load: Callable[[Path], int]
    warm: int = 2  # saves completed before a kill may come (the first one compiles)


def _values(version: int, shape: tuple[int, ...]) -> np.ndarray:
    """A float32 array that is the same for one version and differs everywhere between versions."""
    return (np.arange(np.prod(shape), dtype=np.float32).reshape(shape) % 97) + np.float32(version * 1000)


def _version_of(array: np.ndarray) -> int:
    """The version ``_values`` made ``array`` from; fails unless the whole array is of one version."""
    version = int(round((float(np.asarray(array).ravel()[0])) / 1000))
    np.testing.assert_array_equal(np.asarray(array, np.float32), _values(version, np.shape(array)))
    return version


# ------------------------------------------------------------------ checkpoints
TABLE = (512, 256)  # 512 KiB: big enough that a kill often lands inside a write


def _tree(version: int) -> dict[str, Any]:
    import jax.numpy as jnp

    return {"table": jnp.asarray(_values(version, TABLE)), "step": jnp.int32(version)}


def save_plain(version: int) -> Writer:
    from jaxembed.checkpoint import save_checkpoint

    tree = _tree(version)
    return lambda folder: save_checkpoint(folder / "ckpt", tree, metadata={"version": version})


def load_plain(folder: Path) -> int:
    from jaxembed.checkpoint import read_checkpoint_metadata, restore_checkpoint

    restored = restore_checkpoint(folder / "ckpt", like=_tree(0))
    version = _version_of(restored["table"])
    assert int(restored["step"]) == version == read_checkpoint_metadata(folder / "ckpt")["version"]
    return version


def _placed_tree(version: int) -> dict[str, Any]:
    import jax
    from jax.sharding import NamedSharding, PartitionSpec

    mesh = jax.make_mesh((len(jax.devices()),), ("rows",))
    tree = _tree(version)
    tree["table"] = jax.device_put(tree["table"], NamedSharding(mesh, PartitionSpec("rows", None)))
    return tree


def save_sharded(version: int) -> Writer:
    from jaxembed.checkpoint import save_checkpoint

    tree = _placed_tree(version)
    return lambda folder: save_checkpoint(folder / "sharded", tree)


def load_sharded(folder: Path) -> int:
    from jaxembed.checkpoint import restore_checkpoint

    restored = restore_checkpoint(folder / "sharded", like=_placed_tree(0))
    version = _version_of(np.asarray(restored["table"]))
    assert int(restored["step"]) == version
    return version


def _manager(folder: Path) -> Any:
    from jaxembed.checkpoint import CheckpointManager

    return CheckpointManager(folder / "run", max_to_keep=2)


def save_managed(version: int) -> Writer:
    tree = _tree(version)
    return lambda folder: _manager(folder).save(version, tree, metrics={"loss": 1.0 / version})


def load_managed(folder: Path) -> int:
    """The latest step restores; so does every step listed, each holding its own version."""
    manager = _manager(folder)
    steps = manager.all_steps()
    assert steps and len(steps) <= 3, f"steps on disk: {steps}"
    for step in steps:
        restored = manager.restore(_tree(0), step=step)
        assert _version_of(np.asarray(restored["table"])) == int(restored["step"]) == step
    return manager.latest_step()


def save_streamed(version: int) -> Writer:
    from jaxembed.checkpoint import save_streamed_checkpoint

    tree = _tree(version)
    return lambda folder: save_streamed_checkpoint(
        folder / "streamed", tree, block_bytes=128 << 10, overwrite=True
    )


def load_streamed(folder: Path) -> int:
    from jaxembed.checkpoint import restore_streamed_checkpoint

    restored = restore_streamed_checkpoint(folder / "streamed", like=_tree(0))
    version = _version_of(np.asarray(restored["table"]))
    assert int(restored["step"]) == version
    return version


# ------------------------------------------------------------------ training
def _trainer(version: int) -> Any:
    import jax.numpy as jnp
    import optax

    import jaxembed
    from jaxembed.train import Trainer

    model = jaxembed.Embedding(TABLE[0], TABLE[1], rngs=0)
    model.embeddings[...] = jnp.asarray(_values(version, TABLE))
    return Trainer(model, optax.sgd(0.1), lambda m, batch: jnp.mean(m(batch["ids"])))


def save_trainer(version: int) -> Writer:
    trainer = _trainer(version)
    return lambda folder: trainer.save(folder / "trainer")


def load_trainer(folder: Path) -> int:
    trainer = _trainer(0)
    trainer.restore(folder / "trainer")
    return _version_of(np.asarray(trainer.state.params["embeddings"][...]))


def save_model_checkpoint(version: int) -> Writer:
    from jaxembed.train import ModelCheckpoint

    trainer = _trainer(version)

    def write(folder: Path) -> None:
        callback = ModelCheckpoint(folder / "best", monitor="val_loss", save_best_only=True)
        callback.on_epoch_end(version, {"val_loss": 1.0 / version}, trainer)

    return write


# ------------------------------------------------------------------ Keras files
def _keras_model(version: int) -> Any:
    import jax.numpy as jnp

    import jaxembed

    embedding = jaxembed.Embedding(TABLE[0], TABLE[1], rngs=0)
    embedding.embeddings[...] = jnp.asarray(_values(version, TABLE))
    return keras_sequential()([embedding, jaxembed.GlobalAveragePooling1D()])


def save_weights(version: int) -> Writer:
    model = _keras_model(version)
    return lambda folder: keras_io().save_weights(model, folder / "model.weights.h5")


def load_weights(folder: Path) -> int:
    layer = keras_io().load_embedding(folder / "model.weights.h5")
    return _version_of(np.asarray(layer.embeddings[...]))


def save_keras(version: int) -> Writer:
    model = _keras_model(version)
    return lambda folder: keras_io().save_model(model, folder / "model.keras")


def load_keras(folder: Path) -> int:
    model = keras_io().load_model(folder / "model.keras")
    return _version_of(np.asarray(model.layers[0].embeddings[...]))


# ------------------------------------------------------------------ text
WORDS = 20_000


def _vocabulary(version: int) -> list[str]:
    return [f"v{version}w{i}" for i in range(WORDS)]


def _vocabulary_version(tokens: list[str]) -> int:
    version = int(re.match(r"v(\d+)w", tokens[0]).group(1))
    assert tokens == _vocabulary(version), "a vocabulary mixing two saves"
    return version


def save_vectorizer(version: int) -> Writer:
    from jaxembed.text import TextVectorizer

    vectorizer = TextVectorizer(output_sequence_length=4, vocabulary=_vocabulary(version))
    return lambda folder: vectorizer.save(folder / "vectorizer.json")


def load_vectorizer(folder: Path) -> int:
    from jaxembed.text import TextVectorizer

    return _vocabulary_version(TextVectorizer.load(folder / "vectorizer.json").get_vocabulary()[2:])


def save_vocabulary_file(version: int) -> Writer:
    from jaxembed.text import TextVectorizer

    vectorizer = TextVectorizer(vocabulary=_vocabulary(version))
    return lambda folder: vectorizer.save_vocabulary(folder / "vocabulary.txt")


def load_vocabulary_file(folder: Path) -> int:
    from jaxembed.text import TextVectorizer

    return _vocabulary_version(TextVectorizer(vocabulary=folder / "vocabulary.txt").get_vocabulary()[2:])


# ------------------------------------------------------------------ viz
def save_projector(version: int) -> Writer:
    from jaxembed import viz

    table, labels = _values(version, (2000, 16)), [f"v{version}row{i}" for i in range(2000)]
    return lambda folder: viz.export_projector(table, labels, folder / "projector")


def load_projector(folder: Path) -> int:
    config = (folder / "projector" / "projector_config.pbtxt").read_text()
    tensor_path = re.search(r'tensor_path: "([^"]+)"', config).group(1)
    metadata_path = re.search(r'metadata_path: "([^"]+)"', config).group(1)
    rows = (folder / "projector" / tensor_path).read_text().splitlines()
    table = np.array([[float(v) for v in row.split("\t")] for row in rows], np.float32)
    version = _version_of(table)
    labels = (folder / "projector" / metadata_path).read_text().splitlines()
    assert labels == [f"v{version}row{i}" for i in range(2000)], (
        "the table of one export, the labels of another"
    )
    return version


def save_plot(version: int) -> Writer:
    from jaxembed import viz

    points = _values(version, (3000, 2)) + np.float32(version)
    return lambda folder: viz.plot_embeddings(points, path=folder / "plot.png", title=f"version {version}")


def load_plot(folder: Path) -> int:
    from matplotlib import image

    path = folder / "plot.png"
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and data.endswith(b"IEND\xaeB`\x82"), "a cut PNG file"
    pixels = image.imread(path)  # decodes every chunk (each has a CRC)
    assert pixels.ndim == 3 and pixels.shape[0] > 100
    return -1  # a plot does not say which version drew it; complete and valid is the check


# ------------------------------------------------------------------ datasets
def _source(folder: Path) -> tuple[Path, str]:
    source = folder.parent / f"{folder.name}-source.bin"
    if not source.exists():
        source.write_bytes(np.random.default_rng(0).bytes(8 << 20))
    from jaxembed.datasets import file_digest

    return source, file_digest(source)


def save_download(version: int) -> Writer:
    from jaxembed.datasets import fetch

    def write(folder: Path) -> None:
        source, digest = _source(folder)
        (folder / "cache" / source.name).unlink(missing_ok=True)
        fetch(source.as_uri(), digest, cache_dir=folder / "cache", progress=False)

    return write


def load_download(folder: Path) -> int:
    from jaxembed.datasets import DatasetError, fetch, verify_file

    source, digest = _source(folder)
    target = folder / "cache" / source.name
    if target.exists():
        verify_file(target, digest)  # a cached file is complete or not there at all
    try:
        fetch(source.as_uri(), digest, cache_dir=folder / "cache", progress=False)
    except DatasetError as error:  # pragma: no cover - would be the failure this test looks for
        raise AssertionError(f"a half-downloaded file was accepted: {error}") from None
    return -1


def _memoize_corpus() -> None:
    """Parse the standard library once per process: the kill test is about the cache write."""
    from jaxembed.datasets import _builtin

    if not hasattr(_builtin._collect, "cache_info"):
        _builtin._collect = functools.cache(_builtin._collect)


def warm_corpus() -> None:
    """Run in the fork server, so that every child starts with the corpus parsed."""
    _memoize_corpus()
    from jaxembed.datasets import _builtin

    _builtin._collect()


def save_corpus_cache(version: int) -> Writer:
    from jaxembed.datasets import load_builtin

    _memoize_corpus()

    def write(folder: Path) -> None:
        for stale in (folder / "corpus").glob("*.json"):
            stale.unlink()
        data = load_builtin(cache_dir=folder / "corpus")
        expected = folder / "expected.json"
        if not expected.exists():
            expected.write_text(json.dumps({"texts": len(data), "digest": _corpus_digest(data)}))

    return write


def _corpus_digest(data: Any) -> str:
    return hashlib.sha256(json.dumps([data.texts, data.labels.tolist()]).encode()).hexdigest()


def load_corpus_cache(folder: Path) -> int:
    from jaxembed.datasets import load_builtin

    if not list((folder / "corpus").glob("*.json")):
        return -1  # killed between deleting the old cache and writing the new one: nothing half-written
    cached = load_builtin(cache_dir=folder / "corpus")  # reads the cache, parses nothing
    expected = json.loads((folder / "expected.json").read_text())
    assert (len(cached), _corpus_digest(cached)) == (expected["texts"], expected["digest"])
    return -1


SAVERS = {
    saver.name: saver
    for saver in [
        Saver("save_checkpoint", save_plain, load_plain),
        Saver("save_checkpoint (table on a mesh)", save_sharded, load_sharded),
        Saver("CheckpointManager.save (max_to_keep=2)", save_managed, load_managed),
        Saver("save_streamed_checkpoint", save_streamed, load_streamed),
        Saver("Trainer.save", save_trainer, load_trainer),
        Saver("ModelCheckpoint", save_model_checkpoint, lambda folder: _load_best(folder)),
        Saver("save_weights", save_weights, load_weights),
        Saver("save_model", save_keras, load_keras),
        Saver("TextVectorizer.save", save_vectorizer, load_vectorizer),
        Saver("TextVectorizer.save_vocabulary", save_vocabulary_file, load_vocabulary_file),
        Saver("export_projector", save_projector, load_projector),
        Saver("plot_embeddings", save_plot, load_plot),
        Saver("fetch", save_download, load_download),
        Saver("load_builtin(cache_dir=...)", save_corpus_cache, load_corpus_cache, warm=1),
    ]
}
"""Every function of jaxembed that writes a file or folder."""


def _load_best(folder: Path) -> int:
    trainer = _trainer(0)
    trainer.restore(folder / "best")
    return _version_of(np.asarray(trainer.state.params["embeddings"][...]))


def child(name: str, folder: str, progress: Any) -> None:
    """The saving process: version 1, 2, 3, ... until it is killed.

    ``progress[0]`` is the version being written, ``progress[1]`` the last one completed,
    ``progress[2]`` the duration of the last warm-up save in microseconds.
    """
    import threading
    import time

    from tqdm import tqdm

    # tqdm's default lock is a multiprocessing semaphore, which a SIGKILL would leak.
    tqdm.set_lock(threading.RLock())
    saver = SAVERS[name]
    version = 0
    while True:
        version += 1
        write = saver.save(version)  # building the data is not part of the write
        progress[0] = version
        start = time.perf_counter()
        write(Path(folder))
        if version <= saver.warm:
            progress[2] = int((time.perf_counter() - start) * 1e6)
        progress[1] = version
