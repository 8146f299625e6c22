"""Data: sample schema, toy data, COCO reader, shard writing/reading, decoding, transforms, loaders.

Pure python/torch/numpy/PIL/webdataset (no lightning, typer or rich). Import the submodules directly:
`schema` (sample schema v1, keys), `toy` (toy COCO-format dataset), `coco` (COCO panoptic reader),
`shards` (write/list shards, manifest, nouns sidecars), `decode` (bytes → arrays), `transforms` (joint
image+map transforms), `loader` (train/eval DataLoaders, `iter_samples`), `words` (word sampling),
`skips` (skip counting). Heavy modules (torch, webdataset) load only when their submodule is imported.
"""
