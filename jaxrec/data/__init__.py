"""User-behaviour data: the :class:`Interactions` / :class:`Split` contracts, readers, named data
sets (download + cache), preprocessing and splits."""

from jaxrec.data.download import (
    DATASETS,
    describe,
    download_dataset,
    find_local,
    load_dataset,
    load_interactions,
    resolve,
)
from jaxrec.data.interactions import Interactions, Split
from jaxrec.data.loaders import (
    concat,
    read_lightgcn,
    read_ml100k,
    read_movielens,
    read_movielens_csv,
    read_movielens_dat,
)
from jaxrec.data.preprocess import compact, deduplicate, kcore, to_implicit
from jaxrec.data.split import leave_one_out, random_ratio, recbole_split_counts, split_info, temporal_ratio
from jaxrec.data.tables import read_csv, read_parquet, read_split_files, read_table

__all__ = [
    "DATASETS",
    "Interactions",
    "Split",
    "compact",
    "concat",
    "deduplicate",
    "describe",
    "download_dataset",
    "find_local",
    "kcore",
    "leave_one_out",
    "load_dataset",
    "load_interactions",
    "random_ratio",
    "read_csv",
    "read_lightgcn",
    "read_ml100k",
    "read_movielens",
    "read_movielens_csv",
    "read_movielens_dat",
    "read_parquet",
    "read_split_files",
    "read_table",
    "recbole_split_counts",
    "resolve",
    "split_info",
    "temporal_ratio",
    "to_implicit",
]
