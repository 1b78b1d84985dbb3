"""Resolution-extension items on dataset rows and generated structures (tasks.resolution.items),
the one DataModule (data.items) and the samplers (data.torch_data)."""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pandas as pd
import pytest
import torch

from xtalforge.crystal import Crystal
from xtalforge.data import (
    sample_seed,
)
from xtalforge.data.items import GeneratedItems, ItemsDataModule
from xtalforge.data.torch_data import BlockShuffleSampler, LengthGroupedBatchSampler
from xtalforge.diffraction import reflections, structure_factors
from xtalforge.diffraction.hkl_grid import HKLGrid
from xtalforge.errors import XtalforgeError
from xtalforge.generate import Generator
from xtalforge.tasks.resolution.items import (
    Extension,
    collate_reflections,
    dataset_grid,
    extension_dataset,
    generator_grid,
    items_from_crystals,
)


# --------------------------------------------------------------------------- torch datasets
def expected_item(c: Crystal, task: Extension, grid: HKLGrid) -> tuple[np.ndarray, ...]:
    """Independent construction: direct F, max-of-known normalisation, explicit voxel loop."""
    refl = reflections(c, task.d_high)
    amp = np.abs(structure_factors(c, refl))
    known = refl.d >= task.d_low
    amp = amp / amp[known].max()
    full = np.zeros(grid.shape)
    kmask = np.zeros(grid.shape, bool)
    tmask = np.zeros(grid.shape, bool)
    for (h, k, ll), a, kn in zip(refl.hkl, amp, known):
        idx = (h - grid.lower[0], k - grid.lower[1], ll - grid.lower[2])
        full[idx] = a
        (kmask if kn else tmask)[idx] = True
    return full, kmask, tmask


def test_shard_dataset_tensors_and_masks_match_direct_computation(small_dataset):
    task = Extension(1.3, 0.9)
    ds = extension_dataset(small_dataset, "train", task)
    gen = Generator.from_config("phai-p21c")
    for i in (0, len(ds) - 1):
        item = ds[i]
        c = gen.sample(sample_seed(5, item["id"]))
        full, kmask, tmask = expected_item(c, task, dataset_grid(small_dataset, 0.9))
        np.testing.assert_array_equal(item["known"][0].numpy(), kmask)
        np.testing.assert_array_equal(item["target_mask"][0].numpy(), tmask)
        np.testing.assert_array_equal(item["absent"][0].numpy(), ~(kmask | tmask))
        np.testing.assert_allclose(item["target"][0].numpy(), full, atol=2e-3)
        np.testing.assert_allclose(item["input"][0].numpy(), np.where(kmask, full, 0), atol=2e-3)
    assert (
        len(ds)
        + len(extension_dataset(small_dataset, "val", task))
        + len(extension_dataset(small_dataset, "test", task))
        == 48
    )


def test_e_and_wilson_normalisations(small_dataset):
    e_item = extension_dataset(small_dataset, "train", Extension(1.3, 0.9, "e"), mode="list")[0]
    w_item = extension_dataset(small_dataset, "train", Extension(1.3, 0.9, "wilson"), mode="list")[
        0
    ]
    # ⟨E²⟩ = 1 over all reflections; the Wilson scale (known shells only) gives about 1 there too
    assert abs(float((e_item["value"] ** 2).mean()) - 1) < 0.25
    assert 0.5 < float((w_item["value"][w_item["known"]] ** 2).mean()) < 2.0


def test_list_mode_and_padded_collation(small_dataset):
    ds = extension_dataset(small_dataset, "train", Extension(1.3, 0.9), mode="list")
    a, b = ds[0], ds[1]
    batch = collate_reflections([a, b])
    n = max(len(a["value"]), len(b["value"]))
    assert batch["value"].shape == (2, n) and batch["hkl"].shape == (2, n, 3)
    assert batch["pad_mask"].sum() == len(a["value"]) + len(b["value"])
    torch.testing.assert_close(batch["value"][0, : len(a["value"])], a["value"])
    assert not batch["known"][~batch["pad_mask"]].any()


def test_generated_items_same_samples_whatever_the_workers():
    task = Extension(1.3, 0.9)
    grid = generator_grid("phai-p21c", task.d_high)
    make = functools.partial(items_from_crystals, task=task, grid=grid)
    ds = GeneratedItems("phai-p21c", None, 6, seed=2, make_batch=make, batch=4)
    one = {it["id"]: it for it in ds}
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
    two = {int(it["id"]): it for it in loader}
    assert sorted(one) == sorted(two) == list(range(6))
    for i in one:
        torch.testing.assert_close(one[i]["target"], two[i]["target"])
    c = Generator.from_config("phai-p21c").sample(sample_seed(2, 3))
    full, kmask, _ = expected_item(c, task, grid)
    np.testing.assert_allclose(one[3]["target"][0].numpy(), full, atol=2e-3)
    np.testing.assert_array_equal(one[3]["known"][0].numpy(), kmask)


def test_items_data_module_batches(small_dataset):
    sets = [extension_dataset(small_dataset, s, Extension(1.3, 0.9)) for s in ("train", "val")]
    dm = ItemsDataModule(*sets, batch_size=4)
    batch = next(iter(dm.train_dataloader()))
    assert batch["input"].shape[:2] == (4, 1) and batch["known"].dtype == torch.bool
    ids = [int(i) for b in dm.train_dataloader() for i in b["id"]]
    df = pd.concat(
        pd.read_parquet(f, columns=["id", "split"])
        for f in sorted((small_dataset / "shards").glob("*.parquet"))
    )
    assert sorted(ids) == sorted(df.loc[df["split"] == "train", "id"])  # each once per epoch
    assert ids != sorted(ids)  # shuffled


def test_length_grouped_batches(small_dataset):
    """Each item once per epoch; a pool's batches are the block-shuffled order's items, cut
    into length intervals that do not overlap; seeded per epoch; less padding than random."""
    ds = extension_dataset(small_dataset, "train", Extension(1.3, 0.9), mode="list")
    lengths = ds.lengths()
    assert lengths.tolist() == [ds.row(i)["hkl"].size // 3 for i in range(len(ds))]
    batch, pool_batches = 3, 2
    sampler = LengthGroupedBatchSampler(ds, batch, pool_batches, seed=5)
    sampler.set_epoch(2)
    batches = list(sampler)
    assert len(batches) == len(sampler) and all(1 <= len(b) <= batch for b in batches)
    assert sorted(i for b in batches for i in b) == list(range(len(ds)))
    shuffled = BlockShuffleSampler(ds, seed=5)
    shuffled.set_epoch(2)
    order, pool = list(shuffled), batch * pool_batches
    for p in range(0, len(batches), pool_batches):
        mine = batches[p : p + pool_batches]
        assert sorted(i for b in mine for i in b) == sorted(order[p * batch : p * batch + pool])
        spans = sorted((lengths[b].min(), lengths[b].max()) for b in mine)
        assert all(hi <= lo for (_, hi), (lo, _) in itertools.pairwise(spans))
    again = LengthGroupedBatchSampler(ds, batch, pool_batches, seed=5)
    again.set_epoch(2)
    assert list(again) == batches
    again.set_epoch(3)
    assert list(again) != batches
    padded = sum(len(b) * lengths[b].max() for b in batches)
    random = sum(
        len(order[i : i + batch]) * lengths[order[i : i + batch]].max()
        for i in range(0, len(order), batch)
    )
    assert padded < random
    with pytest.raises(ValueError, match="pool_batches"):
        LengthGroupedBatchSampler(ds, 4, 0)


def test_items_data_module_length_grouping(small_dataset):
    train = extension_dataset(small_dataset, "train", Extension(1.3, 0.9), mode="list")
    dm = ItemsDataModule(
        train, train, batch_size=4, collate=collate_reflections, length_grouping=2, seed=1
    )
    ids = [int(i) for b in dm.train_dataloader() for i in b["id"]]
    assert sorted(ids) == sorted(int(train[i]["id"]) for i in range(len(train)))
    gen = GeneratedItems("phai-p21c", lambda c, i: i, 4)
    with pytest.raises(XtalforgeError, match="length grouping batches the rows"):
        ItemsDataModule(gen, gen, length_grouping=2)
