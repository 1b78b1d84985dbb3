"""Datasets: the shards read by the tools users already have (pandas, DuckDB, Hugging Face
``datasets``) give the same rows as the project's own reader (``ShardDataset``)."""

from __future__ import annotations

import numpy as np
import pytest

from xtalforge.data.torch_data import ShardDataset

COLUMNS = ("id", "spacegroup", "cell", "hkl", "F", "E")


def _own_rows(root) -> dict[int, dict]:
    ds = ShardDataset(root, None)
    return {int(r["id"]): r for r in (ds.row(i) for i in range(len(ds)))}


def _same(own: dict[int, dict], other: list[dict]) -> None:
    assert sorted(int(r["id"]) for r in other) == sorted(own)
    for r in other:
        mine = own[int(r["id"])]
        assert r["spacegroup"] == mine["spacegroup"]
        for c in ("cell", "hkl", "F", "E"):
            np.testing.assert_array_equal(np.asarray(r[c]), np.asarray(mine[c]), err_msg=c)


def test_pandas_reads_the_same_rows(small_dataset):
    pd = pytest.importorskip("pandas")
    files = sorted((small_dataset / "shards").glob("*.parquet"))  # beside: .json sidecars
    df = pd.concat([pd.read_parquet(f, columns=list(COLUMNS)) for f in files])
    _same(_own_rows(small_dataset), df.to_dict("records"))


def test_duckdb_reads_the_same_rows(small_dataset):
    duckdb = pytest.importorskip("duckdb")
    glob = str(small_dataset / "shards" / "*.parquet")
    con = duckdb.connect()
    cur = con.execute(f"SELECT {', '.join(COLUMNS)} FROM read_parquet('{glob}') ORDER BY id")
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    _same(_own_rows(small_dataset), rows)
    n_test = con.execute(f"SELECT count(*) FROM read_parquet('{glob}') WHERE split = 'test'")
    assert n_test.fetchone()[0] == len(ShardDataset(small_dataset, "test"))


def test_hugging_face_datasets_reads_the_same_rows(small_dataset, tmp_path):
    datasets = pytest.importorskip("datasets")
    files = sorted(str(p) for p in (small_dataset / "shards").glob("*.parquet"))
    hf = datasets.load_dataset(
        "parquet", data_files={"train": files}, cache_dir=str(tmp_path / "hf"), split="train"
    )
    _same(_own_rows(small_dataset), [hf[i] for i in range(len(hf))])


def test_the_cards_reading_snippet_runs_as_written(small_dataset, tmp_path, monkeypatch):
    """The "Reading it" block of card.md, executed as a user would paste it."""
    import re

    pytest.importorskip("duckdb")
    pytest.importorskip("datasets")
    from xtalforge.data.card import dataset_card

    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))
    card = (tmp_path / "card").joinpath("card.md")
    dataset_card(small_dataset, tmp_path / "card")
    code = re.search(r"```python\n(.*?)```", card.read_text(), re.S).group(1)
    scope: dict = {}
    exec(compile(code, str(card), "exec"), scope)
    assert len(scope["df"]) == len(scope["ds"]) == 48
    assert len(scope["train"]) == int((scope["df"]["split"] == "train").sum())
