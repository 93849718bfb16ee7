"""Observation tables: mappings, presets, mixtures, derived finals and clear errors."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.reference_data import reference_data_dir
from thresher.mixtures.mixture_observations import MixtureObservations
from thresher.mixtures.observations import ObservationError, Observations, load_observations, parse_columns


def write_csv(path, text: str):
    path.write_text(text)
    return path


def test_mapping_and_derived_final_flag(tmp_path) -> None:
    p = write_csv(tmp_path / "runs.csv", "name,toks,uniq,loss,n\nr1,10,5,3.0,100\nr1,20,5,2.5,100\nr2,8,8,2.9,200\n")
    obs = load_observations(p, "run=name,seen=toks,unique=uniq,value=loss,params=n")
    assert len(obs) == 3 and obs.pools == ("all",)
    np.testing.assert_array_equal(obs.final, [False, True, True])
    np.testing.assert_allclose(obs.epochs[:, 0], [2.0, 4.0, 1.0])
    np.testing.assert_allclose(obs.unique_used[:, 0], [5.0, 5.0, 8.0])
    assert obs.n_runs == 2


def test_parquet_mixture_table(tmp_path) -> None:
    table = pa.table({"w_a": [1.0, 30.0], "w_b": [0.0, 70.0], "u_a": [10, 10], "u_b": [20, 20],
                      "seen": [5.0, 40.0], "value": [1.0, 0.8]})
    pq.write_table(table, tmp_path / "mix.parquet")
    obs = load_observations(tmp_path / "mix.parquet", "weight.a=w_a,weight.b=w_b,unique.a=u_a,unique.b=u_b")
    assert obs.pools == ("a", "b")
    np.testing.assert_allclose(obs.weights, [[1.0, 0.0], [0.3, 0.7]])  # percentages normalised
    np.testing.assert_allclose(obs.epochs[1], [1.2, 1.4])
    np.testing.assert_array_equal(obs.single_pool, [True, False])


def test_pool_column_and_run_join(tmp_path) -> None:
    p = write_csv(tmp_path / "c.csv", "ds,n,e,seen,u,v\nc4,1,1,5,5,3\noscar,1,1,5,5,3.2\nc4,1,2,10,5,2.9\n")
    obs = load_observations(p, "run=ds+n+e,pool=ds,seen=seen,unique=u,value=v,params=n")
    assert obs.pools == ("c4", "oscar")
    assert list(obs.run) == ["c4/1/1", "oscar/1/1", "c4/1/2"]
    np.testing.assert_allclose(obs.weights, [[1, 0], [0, 1], [1, 0]])


@pytest.mark.parametrize(
    "text,mapping,match",
    [
        ("seen,unique,value\n1,1,x\n", None, "row 1, column 'value'"),
        ("seen,unique,value\n1,1,2\n-1,1,2\n", None, "row 2"),
        ("seen,unique,value\n1,0,2\n", None, "positive unique size"),
        ("seen,value\n1,2\n", None, "unique"),
        ("a,b\n1,2\n", "seen=a,value=nope,unique=b", "no column 'nope'"),
        ("a,b\n1,2\n", "seen=a,bogus=b", "unknown key 'bogus'"),
        ("a,b\n1,2\n", "seen", "expected KEY=COLUMN"),
    ],
)
def test_bad_input_names_file_and_row(tmp_path, text, mapping, match) -> None:
    p = write_csv(tmp_path / "bad.csv", text)
    with pytest.raises(ObservationError, match=match) as info:
        load_observations(p, mapping)
    if "row" in match:
        assert "bad.csv" in str(info.value)


def test_missing_file_and_presets() -> None:
    with pytest.raises(ObservationError, match="no such file"):
        load_observations("does/not/exist.csv")
    assert parse_columns("datablations-final")["seen"] == "tokens"


def test_from_arrays_and_with_pools() -> None:
    obs = Observations.from_arrays(seen=[10.0, 20.0], value=[1.0, 0.9], unique={"a": 5.0, "b": [10.0, 10.0]},
                                   weights={"a": [1.0, 0.5], "b": [0.0, 0.5]})
    wide = obs.with_pools(["b", "c", "a"])
    np.testing.assert_allclose(wide.weights, [[0, 0, 1], [0.5, 0, 0.5]])
    with pytest.raises(ObservationError, match="not among"):
        obs.with_pools(["a"])
    sub = obs.subset(np.array([False, True]))
    assert len(sub) == 1 and sub.seen[0] == 20.0


def test_reference_files_load_with_documented_mappings() -> None:
    root = reference_data_dir()
    if root is None or not (root / "datablations_loss_curves_c4.csv").exists():
        pytest.skip("reference data (../shared/data) is not present")
    final = load_observations(root / "datablations_final_losses.csv", "datablations-final")
    assert len(final) == 296 and final.final.all() and final.n_runs == 296
    subset = load_observations(root / "datablations_final_losses.csv", "datablations-final",
                               where={"in_paper_fit_subset": 1})
    assert len(subset) == 182
    curves = load_observations(root / "datablations_loss_curves_c4.csv", "datablations-curves")
    assert curves.pools == ("c4",) and curves.n_runs == 24 and curves.final.sum() == 24
    assert np.all(curves.epochs <= 44 * (1 + 1e-6))


def _pilot_table(path):
    """Mixtures of two pools at two training sizes: a loss that falls with size and with more `web`."""
    rows = ["run,w_web,w_code,u_web,u_code,tokens,loss"]
    rng = np.random.default_rng(0)
    for size in (1000.0, 4000.0):
        for k, w in enumerate(np.linspace(0.0, 1.0, 9)):
            loss = (2.0 + 1.5 * (1 - w) ** 2) * (size / 1000.0) ** -0.2 * (1 + 0.002 * rng.standard_normal())
            rows.append(f"r{k}-{size:g},{w},{1 - w},3000,2000,{size},{loss}")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_runs_loaded_once_feed_a_law_fit_and_the_ot_performance_model(tmp_path) -> None:
    from thresher.mixtures import MixtureOT, PerformanceModel, fit

    mapping = "weight.web=w_web,weight.code=w_code,unique.web=u_web,unique.code=u_code,seen=tokens,value=loss"
    obs = load_observations(_pilot_table(tmp_path / "pilots.csv"), mapping)
    law = fit(obs, "goyal", grid="small", max_starts=4)
    assert law.n_obs == len(obs) == 18 and law.pools == ("code", "web")
    view = MixtureObservations.from_observations(obs)
    assert view.weights is obs.weights and view.sizes is obs.seen  # a view: the rows are shared, not copied
    assert view.observations is obs and view.value() is obs.value and view.ids == list(obs.run)
    rng = np.random.default_rng(1)
    ot = MixtureOT([rng.normal(0.0, size=(30, 2)), rng.normal(2.0, size=(30, 2))], rng.normal(1.5, size=(40, 2)))
    model = PerformanceModel("linear_ot", ot=ot, n_boot=5).fit(obs)  # the table itself: its mixture view
    assert model.pools == ["code", "web"] and model.sizes_.tolist() == [1000.0, 4000.0] and model.law_ == "log"
    np.testing.assert_array_equal(model._train["weights"], obs.weights)
    np.testing.assert_array_equal(model._train["values"], obs.value)
    again = PerformanceModel("linear_ot", ot=ot, n_boot=5).fit(view, "value")
    np.testing.assert_array_equal(again.predict(obs.weights, 2000.0), model.predict(obs.weights, 2000.0))
    with pytest.raises(ObservationError, match="no value column 'accuracy'"):
        MixtureObservations.from_observations(obs, "accuracy")


def test_the_mixers_wide_table_is_the_same_table(tmp_path) -> None:
    from thresher.mixtures import fit
    from thresher.mixtures.mixture_observations import read_mixture_csv

    path = tmp_path / "mix.csv"
    path.write_text("run,weight_web,weight_code,size,accuracy,loss\nr1,0.25,0.75,100,0.5,2.0\nr2,1,0,200,0.75,1.5\n")
    mix = read_mixture_csv(path)
    assert mix.pools == ["web", "code"] and mix.ids == ["r1", "r2"]  # the file's pool order
    np.testing.assert_array_equal(mix.weights, [[0.25, 0.75], [1.0, 0.0]])
    assert mix.sizes.tolist() == [100.0, 200.0] and sorted(mix.values) == ["accuracy", "loss"]
    table = mix.observations
    assert table.pools == ("code", "web") and table.seen.tolist() == [100.0, 200.0] and table.source == str(path)
    with pytest.raises(ObservationError, match=r"mix\.csv: a utility law needs unique sizes for every run"):
        fit(table, "goyal")


def test_observation_files_have_limits(tmp_path, monkeypatch) -> None:
    from thresher.mixtures import observation_files

    p = write_csv(tmp_path / "runs.csv", "seen,unique,value\n1,1,2\n2,1,1.5\n3,1,1.2\n")
    monkeypatch.setattr(observation_files, "MAX_ROWS", 2)
    with pytest.raises(ObservationError, match=r"runs\.csv: 3 rows, over the limit of 2"):
        load_observations(p)
    pq.write_table(pa.table({"seen": [1.0, 2.0, 3.0], "unique": [1.0] * 3, "value": [2.0, 1.5, 1.2]}), tmp_path / "r.parquet")
    with pytest.raises(ObservationError, match=r"r\.parquet: 3 rows, over the limit of 2"):
        load_observations(tmp_path / "r.parquet")
    monkeypatch.setattr(observation_files, "MAX_BYTES", 10)
    with pytest.raises(ObservationError, match=r"runs\.csv: \d+ bytes is over the 10 bytes limit for observation table files"):
        load_observations(p)
    monkeypatch.undo()
    write_csv(tmp_path / "dup.csv", "seen,unique,value,seen\n1,1,2,3\n")
    with pytest.raises(ObservationError, match=r"dup\.csv: duplicate column names \['seen'\]"):
        load_observations(tmp_path / "dup.csv")


def test_predictions_are_written_atomically_as_csv_or_parquet(tmp_path) -> None:
    from thresher.mixtures.observation_files import read_table, write_table

    table = pa.table({"run": ["a", "b"], "seen": [1.0, 2.0], "predicted": [0.5, 0.25]})
    for name in ("p.csv", "p.parquet"):
        write_table(table, tmp_path / name)
        assert read_table(tmp_path / name).to_pylist() == table.to_pylist()
    assert sorted(f.name for f in tmp_path.iterdir()) == ["p.csv", "p.parquet"]
