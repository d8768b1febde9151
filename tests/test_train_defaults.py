"""Epoch defaults depend on the arch's kind: a warm-started pretrained size fine-tunes 5 epochs, one from scratch
10 (docs/training.md#recipe); what was chosen is recorded in the run's config."""

from __future__ import annotations

from edgeclf.train.config import DEFAULT_HEAD_EPOCHS, DEFAULT_WARM_EPOCHS, TrainConfig
from edgeclf.train.recipe import phases


def test_pretrained_and_scratch_defaults_differ_and_are_recorded(tmp_path) -> None:
    lite = TrainConfig(data_dir=str(tmp_path))
    assert (lite.epochs, lite.warm_epochs, lite.head_epochs) == (30, DEFAULT_WARM_EPOCHS["pretrained"],
                                                                  DEFAULT_HEAD_EPOCHS)
    assert [(p.kind, p.epochs) for p in phases(lite, lite.epochs, warm=False)] == [("head", 10), ("fine-tune", 20)]
    assert [(p.kind, p.epochs) for p in phases(lite, lite.warm_epochs, warm=True)] == [("fine-tune", 5)]
    for cfg in (TrainConfig(data_dir=str(tmp_path), arch="edge"),
                TrainConfig(data_dir=str(tmp_path), arch="efficientnet-lite0", weights="none")):
        assert (cfg.epochs, cfg.warm_epochs) == (30, DEFAULT_WARM_EPOCHS["scratch"]) == (30, 10)
    mine = TrainConfig(data_dir=str(tmp_path), epochs=7, warm_epochs=2)
    assert (mine.epochs, mine.warm_epochs) == (7, 2)
    # The saved config holds numbers, so a --resume of a run made under other defaults keeps its own.
    again = TrainConfig.from_dict(lite.to_dict())
    assert again == lite and lite.to_dict()["warm_epochs"] == 5


def test_the_feature_cache_is_on_by_default_and_old_runs_resume_without_it(tmp_path) -> None:
    from edgeclf.train.config import DEFAULT_FEATURE_VIEWS

    cfg = TrainConfig(data_dir=str(tmp_path))
    assert cfg.feature_views == DEFAULT_FEATURE_VIEWS == 6 and cfg.to_dict()["feature_views"] == 6
    saved_before = {k: v for k, v in cfg.to_dict().items() if k not in ("feature_views", "warm_feature_views")}
    assert TrainConfig.from_dict(saved_before).feature_views == 0  # a config.json from before the cache
    assert TrainConfig.from_dict(saved_before).warm_feature_views == 0
    # One from before --warm-feature-views trained every size with --feature-views, and resumes so.
    older = {k: v for k, v in cfg.with_(feature_views=4).to_dict().items() if k != "warm_feature_views"}
    assert TrainConfig.from_dict(older).warm_feature_views == 4
    assert TrainConfig(data_dir=str(tmp_path), feature_views=3).warm_feature_views == 3  # as --feature-views
    assert TrainConfig(data_dir=str(tmp_path), warm_feature_views=1).to_dict()["warm_feature_views"] == 1
